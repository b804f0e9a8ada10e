"""The post lists' totals as counter rows (chassis.list_counts), filled from the current summaries.

``total`` was a ``count(*)`` over the list's live summaries at every request, linear in the
board. ``post_list_counts`` holds ``(scope, key) -> live`` for every board, every author and all
posts; the projector moves it in the statement that writes a summary. This migration fills it
from ``post_summaries`` in one scan (the statement of ``board.adapters.tables``
``RECOUNT_LIST_COUNTS``, frozen here as it was when written): no rebuild is needed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "post_list_counts",
        sa.Column("scope", sa.String(40), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("live", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_post_list_counts"),
    )
    op.execute(
        "INSERT INTO post_list_counts (scope, key, live)"
        " SELECT CASE GROUPING(board_id, author_id) WHEN 3 THEN 'all' WHEN 1 THEN 'board'"
        "  ELSE 'author' END,"
        " CASE GROUPING(board_id, author_id) WHEN 3 THEN '' WHEN 1 THEN board_id::text"
        "  ELSE author_id::text END,"
        " count(*)"
        " FROM post_summaries WHERE NOT deleted"
        " GROUP BY GROUPING SETS ((), (board_id), (author_id))"
        " HAVING GROUPING(author_id) = 1 OR author_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("post_list_counts")
