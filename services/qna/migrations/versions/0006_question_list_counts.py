"""The question lists' totals as counter rows (chassis.list_counts), filled from the current summaries.

``total`` was a ``count(*)`` over the list's live summaries at every request, linear in the
number of questions. ``question_list_counts`` holds ``(scope, key) -> live`` for all questions,
every status, every author and every author and status; the projector moves it in the statement
that writes a summary. This migration fills it from ``question_summaries`` in one scan (the
statement of ``qna.adapters.tables`` ``RECOUNT_LIST_COUNTS``, frozen here as it was when
written): no rebuild is needed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "question_list_counts",
        sa.Column("scope", sa.String(40), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("live", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_question_list_counts"),
    )
    op.execute(
        "INSERT INTO question_list_counts (scope, key, live)"
        " SELECT CASE GROUPING(status, author_id) WHEN 3 THEN 'all' WHEN 1 THEN 'status'"
        "  WHEN 2 THEN 'author' ELSE 'author_status' END,"
        " CASE GROUPING(status, author_id) WHEN 3 THEN '' WHEN 1 THEN status::text"
        "  WHEN 2 THEN author_id::text ELSE author_id::text || ':' || status::text END,"
        " count(*)"
        " FROM question_summaries WHERE NOT deleted"
        " GROUP BY GROUPING SETS ((), (status), (author_id), (author_id, status))"
        " HAVING GROUPING(author_id) = 1 OR author_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("question_list_counts")
