"""The answer set behind question_summaries.answer_count, and a version guard for the status.

The count was kept as +1/-1 deltas under one version guard for the whole row, so an event
replayed after a newer event of its question was dropped: an answer stayed uncounted, and a
title or status change stayed lost. The count is now the number of alive answers in
``question_summary_answers`` (chassis.child_sets), and ``status`` has its own version guard
(``status_version``). The write model is in the same database, so this migration fills the set
from ``answers`` and recomputes every summary's count: no rebuild is needed. Answers are deleted
for good in the write model, so the set starts without tombstones for answers deleted before
this migration; ``qna rebuild-read-model`` restores those too, from the topics.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "question_summaries",
        sa.Column("status_version", sa.Integer(), nullable=False, server_default="0"),
    )
    # the row's version so far covered every event, so it is not older than the status
    op.execute("UPDATE question_summaries SET status_version = version")
    op.create_table(
        "question_summary_answers",
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("child_id", sa.String(100), nullable=False),
        sa.Column("parent_id", UUID(as_uuid=True), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("alive", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "child_id", name="pk_question_summary_answers"),
    )
    op.create_index(
        "ix_question_summary_answers_parent", "question_summary_answers", ["parent_id", "kind"]
    )
    op.execute(
        "INSERT INTO question_summary_answers (kind, child_id, parent_id, weight, alive) "
        "SELECT 'answers', id::text, question_id, 1, true FROM answers"
    )
    op.execute(
        "UPDATE question_summaries s SET answer_count = coalesce(("
        "SELECT sum(a.weight) FROM question_summary_answers a "
        "WHERE a.kind = 'answers' AND a.parent_id = s.id AND a.alive), 0)"
    )


def downgrade() -> None:
    op.drop_table("question_summary_answers")
    op.drop_column("question_summaries", "status_version")
