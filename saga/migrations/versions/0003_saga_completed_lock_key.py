"""Saga definition option once_per_key: an index finds the completed saga that takes a key for good.

A member whose withdrawal COMPLETED cannot start another one (409, no new saga row).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_saga_instances_completed_lock_key",
        "saga_instances",
        ["type", "lock_key"],
        postgresql_where=sa.text("lock_key IS NOT NULL AND status = 'COMPLETED'"),
    )


def downgrade() -> None:
    op.drop_index("ix_saga_instances_completed_lock_key", table_name="saga_instances")
