"""Board database: boards (seeded), posts, comments, authors, the post list read model.

The chassis tables come from the chassis branch, on which this revision depends.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
#: The chassis tables (outbox, inbox, idempotency keys, ...) come from the chassis branch.
depends_on: str | Sequence[str] | None = ("chassis_0001",)

#: Fixed ids, so every environment has the same two boards.
NOTICE_BOARD_ID = uuid.UUID("62a77ce4-349e-4ce9-9cb0-decfd5f1407d")
FREE_BOARD_ID = uuid.UUID("25b98e38-4d04-4d88-94e0-9f538a0a3e7a")


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    # Trigram index support for the title search (a trusted extension since PostgreSQL 13).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    boards = op.create_table(
        "boards",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("slug", sa.String(40), nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("admin_only", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("slug", name="uq_boards_slug"),
    )
    assert boards is not None
    op.bulk_insert(
        boards,
        [
            {
                "id": NOTICE_BOARD_ID,
                "slug": "notice",
                "name": "공지사항",
                "description": "운영자 공지 (관리자만 글을 쓸 수 있습니다)",
                "admin_only": True,
                "created_at": sa.func.clock_timestamp(),
            },
            {
                "id": FREE_BOARD_ID,
                "slug": "free",
                "name": "자유게시판",
                "description": "누구나 자유롭게 글을 쓰는 게시판",
                "admin_only": False,
                "created_at": sa.func.clock_timestamp(),
            },
        ],
        multiinsert=False,
    )

    op.create_table(
        "posts",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("board_id", UUID(as_uuid=True), sa.ForeignKey("boards.id"), nullable=False),
        sa.Column("author_id", UUID(as_uuid=True), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("comment_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("view_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False),
        *_timestamps(),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_posts_board_id", "posts", ["board_id"])
    op.create_index("ix_posts_author_id", "posts", ["author_id"])

    op.create_table(
        "comments",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("post_id", UUID(as_uuid=True), sa.ForeignKey("posts.id"), nullable=False),
        sa.Column("author_id", UUID(as_uuid=True), nullable=True),
        sa.Column("content", sa.Text, nullable=False),
        *_timestamps(),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_comments_post_id_created_at", "comments", ["post_id", "created_at"])
    op.create_index("ix_comments_author_id", "comments", ["author_id"])

    op.create_table(
        "authors",
        sa.Column("member_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("nickname", sa.String(100), nullable=True),
        sa.Column("withdrawn", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "author_anonymizations",
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(10), nullable=False),
        sa.Column("entity_id", UUID(as_uuid=True), nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("saga_id", "entity", "entity_id", name="pk_author_anonymizations"),
    )

    op.create_table(
        "post_summaries",
        sa.Column("post_id", UUID(as_uuid=True), nullable=False),
        sa.Column("board_id", UUID(as_uuid=True), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("author_id", UUID(as_uuid=True), nullable=True),
        sa.Column("author_nickname", sa.String(100), nullable=False),
        sa.Column("comment_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("view_count", sa.BigInteger, nullable=False, server_default="0"),
        *_timestamps(),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("post_id", name="pk_post_summaries"),
    )
    live = sa.text("NOT deleted")
    op.create_index(
        "ix_post_summaries_board_created",
        "post_summaries",
        ["board_id", sa.text("created_at DESC"), sa.text("post_id DESC")],
        postgresql_where=live,
    )
    op.create_index(
        "ix_post_summaries_author_created",
        "post_summaries",
        ["author_id", sa.text("created_at DESC")],
        postgresql_where=live,
    )
    op.create_index(
        "ix_post_summaries_created",
        "post_summaries",
        [sa.text("created_at DESC")],
        postgresql_where=live,
    )
    op.create_index(
        "ix_post_summaries_title_trgm",
        "post_summaries",
        ["title"],
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    )


def downgrade() -> None:
    for table in (
        "post_summaries",
        "author_anonymizations",
        "authors",
        "comments",
        "posts",
        "boards",
    ):
        op.drop_table(table)
