"""Semantic lock on the author: the withdrawal saga marks the member whose writes it refuses.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("authors", sa.Column("writes_refused_by_saga", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("authors", "writes_refused_by_saga")
