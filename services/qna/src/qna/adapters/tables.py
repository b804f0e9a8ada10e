"""Database per service: the qna schema (write model, local author copy, saga records, read model)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from chassis.author_lock import authors_table
from chassis.child_sets import child_table
from chassis.list_counts import ListCounts, Scope, list_counts_table

metadata = MetaData()

# ---------------------------------------------------------------- write model (the aggregate)

questions = Table(
    "questions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("author_id", UUID(as_uuid=True), nullable=True),
    Column("title", String(200), nullable=False),
    Column("content", Text, nullable=False),
    Column("bounty", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("acceptance_saga_id", String(64), nullable=True),
    Column("pending_answer_id", UUID(as_uuid=True), nullable=True),
    Column("accepted_answer_id", UUID(as_uuid=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "status IN ('OPEN', 'ACCEPTING', 'RESOLVED', 'CLOSED')", name="ck_questions_status"
    ),
    CheckConstraint("bounty BETWEEN 0 AND 1000", name="ck_questions_bounty"),
    Index("ix_questions_author_id", "author_id"),
)

answers = Table(
    "answers",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "question_id",
        UUID(as_uuid=True),
        ForeignKey("questions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("author_id", UUID(as_uuid=True), nullable=True),
    Column("content", Text, nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_answers_question_id", "question_id", "created_at"),
    Index("ix_answers_author_id", "author_id"),
)

question_comments = Table(
    "question_comments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "question_id",
        UUID(as_uuid=True),
        ForeignKey("questions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("author_id", UUID(as_uuid=True), nullable=True),
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_question_comments_question_id", "question_id", "created_at"),
    Index("ix_question_comments_author_id", "author_id"),
)

# ---------------------------------------------------------------- members, as member.events tell

#: With the semantic lock that RetireAuthor marks (chassis.author_lock).
authors = authors_table(metadata)

# ---------------------------------------------------------------- what a RetireAuthor changed

author_retirements = Table(
    "author_retirements",
    metadata,
    Column("saga_id", String(64), primary_key=True),
    Column("question_id", UUID(as_uuid=True), primary_key=True),
    Column("member_id", UUID(as_uuid=True), nullable=False),
    Column("question_closed", Boolean, nullable=False),
    Column("question_anonymized", Boolean, nullable=False),
    Column("answer_ids", ARRAY(UUID(as_uuid=True)), nullable=False),
    Column("comment_ids", ARRAY(UUID(as_uuid=True)), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

# ---------------------------------------------------------------- CQRS read model

question_summaries = Table(
    "question_summaries",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("author_id", UUID(as_uuid=True), nullable=True),
    Column("author_nickname", String(100), nullable=True),
    Column("author_withdrawn", Boolean, nullable=False, server_default=text("false")),
    Column("bounty", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("answer_count", Integer, nullable=False, server_default=text("0")),
    Column("accepted_answer_id", UUID(as_uuid=True), nullable=True),
    # True for a deleted question (a blanked tombstone, final) and for a placeholder row started
    # by a status or answer event that overtook QuestionAsked (``version`` 0): both hidden.
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    #: Version of the newest QuestionAsked/Updated/Deleted applied: the guard of title, bounty
    #: and author (0: none seen yet).
    Column("version", Integer, nullable=False),
    #: Version of the newest event that set ``status`` (Asked, Updated, Closed, Reopened).
    Column("status_version", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_question_summaries_created_at", "created_at", "id"),
    Index("ix_question_summaries_status_created_at", "status", "created_at"),
    Index("ix_question_summaries_author_id", "author_id"),
    Index(
        "ix_question_summaries_title_trgm",
        "title",
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    ),
)

#: The answer set behind ``question_summaries.answer_count`` (chassis.child_sets): one row per
#: answer id seen, a deleted answer as a tombstone.
question_summary_answers = child_table("question_summary_answers", metadata)

#: The projector's own copy of nicknames, so the read model is rebuilt from events alone.
question_summary_authors = Table(
    "question_summary_authors",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("nickname", String(100), nullable=True),
    Column("withdrawn", Boolean, nullable=False, server_default=text("false")),
    Column("profile_version", Integer, nullable=False, server_default=text("0")),
)

#: The totals of the question lists (chassis.list_counts): ``(scope, key) -> live`` per status,
#: per author, per author and status, and for all questions, moved by the projector in the
#: statement that writes a summary.
question_list_counts = list_counts_table("question_list_counts", metadata)

#: The filters of ``GET /api/questions`` whose total is kept: ``status``, ``author_id``, both,
#: or none. A title search (``q``) counts its matches instead: it is selective, and its
#: matches cannot be counted ahead.
QUESTION_LIST_COUNTS = ListCounts(
    question_summaries,
    question_list_counts,
    (
        Scope("all"),
        Scope("status", ("status",)),
        Scope("author", ("author_id",)),
        Scope("author_status", ("author_id", "status")),
    ),
)

#: Plain SQL, idempotent: set every question-list counter from ``question_summaries`` (one
#: scan) and return how many were wrong. For summaries loaded in bulk (a benchmark's seed) with
#: the worker stopped; a rebuild runs the same on its fresh tables before the swap.
RECOUNT_LIST_COUNTS = QUESTION_LIST_COUNTS.recount_sql()
