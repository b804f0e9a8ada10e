"""Saga step retries: how often a step's forward command was re-sent or tried again.

A step at or after the pivot is re-sent after a timeout, and a refused retriable step is tried
again with a new attempt; each adds one (shown in ``GET /api/sagas/{id}``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "saga_steps",
        sa.Column("retries", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("saga_steps", "retries")
