"""Qna schema: questions, answers, comments, the author copy, retirement records, the
question_summaries read model (with a trigram index for title search). The chassis tables come
from the chassis branch, on which this revision depends.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
#: The chassis tables (outbox, inbox, idempotency keys, ...) come from the chassis branch.
depends_on: str | Sequence[str] | None = ("chassis_0001",)

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    # trusted extension: the database owner may create it (the local infra pre-creates it)
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_table(
        "questions",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("author_id", UUID, nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("bounty", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("acceptance_saga_id", sa.String(64), nullable=True),
        sa.Column("pending_answer_id", UUID, nullable=True),
        sa.Column("accepted_answer_id", UUID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('OPEN', 'ACCEPTING', 'RESOLVED', 'CLOSED')", name="ck_questions_status"
        ),
        sa.CheckConstraint("bounty BETWEEN 0 AND 1000", name="ck_questions_bounty"),
    )
    op.create_index("ix_questions_author_id", "questions", ["author_id"])

    op.create_table(
        "answers",
        sa.Column("id", UUID, primary_key=True),
        sa.Column(
            "question_id", UUID, sa.ForeignKey("questions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("author_id", UUID, nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_answers_question_id", "answers", ["question_id", "created_at"])
    op.create_index("ix_answers_author_id", "answers", ["author_id"])

    op.create_table(
        "question_comments",
        sa.Column("id", UUID, primary_key=True),
        sa.Column(
            "question_id", UUID, sa.ForeignKey("questions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("author_id", UUID, nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_question_comments_question_id", "question_comments", ["question_id", "created_at"]
    )
    op.create_index("ix_question_comments_author_id", "question_comments", ["author_id"])

    op.create_table(
        "authors",
        sa.Column("member_id", UUID, primary_key=True),
        sa.Column("nickname", sa.String(100), nullable=True),
        sa.Column("withdrawn", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )

    op.create_table(
        "author_retirements",
        sa.Column("saga_id", sa.String(64), primary_key=True),
        sa.Column("question_id", UUID, primary_key=True),
        sa.Column("member_id", UUID, nullable=False),
        sa.Column("question_closed", sa.Boolean(), nullable=False),
        sa.Column("question_anonymized", sa.Boolean(), nullable=False),
        sa.Column("answer_ids", postgresql.ARRAY(UUID), nullable=False),
        sa.Column("comment_ids", postgresql.ARRAY(UUID), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )

    op.create_table(
        "question_summaries",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("author_id", UUID, nullable=True),
        sa.Column("author_nickname", sa.String(100), nullable=True),
        sa.Column(
            "author_withdrawn", sa.Boolean(), nullable=False, server_default=sa.text("false")
        ),
        sa.Column("bounty", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("answer_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("accepted_answer_id", UUID, nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_question_summaries_created_at", "question_summaries", ["created_at", "id"])
    op.create_index(
        "ix_question_summaries_status_created_at", "question_summaries", ["status", "created_at"]
    )
    op.create_index("ix_question_summaries_author_id", "question_summaries", ["author_id"])
    op.create_index(
        "ix_question_summaries_title_trgm",
        "question_summaries",
        ["title"],
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    )

    op.create_table(
        "question_summary_authors",
        sa.Column("member_id", UUID, primary_key=True),
        sa.Column("nickname", sa.String(100), nullable=True),
        sa.Column("withdrawn", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )


def downgrade() -> None:
    for table in (
        "question_summary_authors",
        "question_summaries",
        "author_retirements",
        "authors",
        "question_comments",
        "answers",
        "questions",
    ):
        op.drop_table(table)
