"""Author copies remember the member's profile version, so an older nickname never returns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The write side's copy and the read model's own copy (rebuilt from events alone).
TABLES = ("authors", "question_summary_authors")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("profile_version", sa.Integer(), nullable=False, server_default="0"),
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "profile_version")
