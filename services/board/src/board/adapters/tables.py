"""Database per service: the board database's tables (write model, local author copy, read model)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import UUID

from chassis.author_lock import authors_table
from chassis.child_sets import child_table
from chassis.list_counts import ListCounts, Scope, list_counts_table

metadata = MetaData()

# --- write model -----------------------------------------------------------------------------

boards = Table(
    "boards",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("slug", String(40), nullable=False),
    Column("name", String(50), nullable=False),
    Column("description", String(500), nullable=False),
    Column("admin_only", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("slug", name="uq_boards_slug"),
)

posts = Table(
    "posts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("board_id", UUID(as_uuid=True), ForeignKey("boards.id"), nullable=False),
    # NULL once the author's withdrawal anonymized the post.
    Column("author_id", UUID(as_uuid=True), nullable=True),
    Column("title", String(200), nullable=False),
    Column("content", Text, nullable=False),
    Column("comment_count", Integer, nullable=False, server_default="0"),
    Column("view_count", BigInteger, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index("ix_posts_board_id", "board_id"),
    Index("ix_posts_author_id", "author_id"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("post_id", UUID(as_uuid=True), ForeignKey("posts.id"), nullable=False),
    Column("author_id", UUID(as_uuid=True), nullable=True),
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index("ix_comments_post_id_created_at", "post_id", "created_at"),
    Index("ix_comments_author_id", "author_id"),
)

# --- local copy of member nicknames (fed by member.events; never a call to member) ----------

#: With the semantic lock that AnonymizeAuthor marks (chassis.author_lock).
authors = authors_table(metadata)

# --- what AnonymizeAuthor changed, per saga, so RestoreAuthor undoes exactly that -----------

author_anonymizations = Table(
    "author_anonymizations",
    metadata,
    Column("saga_id", String(64), nullable=False),
    Column("entity", String(10), nullable=False),  # "post" or "comment"
    Column("entity_id", UUID(as_uuid=True), nullable=False),
    Column("member_id", UUID(as_uuid=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("saga_id", "entity", "entity_id", name="pk_author_anonymizations"),
)

# --- read model (CQRS): written only by the projector in `board worker` ----------------------

#: The post list. A rebuild copies its shape from the database (``chassis.read_model.rebuild``)
#: and gives the copy's indexes and constraints these names back on the swap.
post_summaries = Table(
    "post_summaries",
    metadata,
    Column("post_id", UUID(as_uuid=True), nullable=False),
    Column("board_id", UUID(as_uuid=True), nullable=False),
    Column("title", String(200), nullable=False),
    Column("author_id", UUID(as_uuid=True), nullable=True),
    Column("author_nickname", String(100), nullable=False),
    Column("comment_count", Integer, nullable=False, server_default="0"),
    Column("view_count", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The post version of the newest PostCreated/Updated/Deleted applied: the guard of the
    # post's own fields (title, board, byline). Comment events do not move it; the
    # comment count is derived from the comment set (``post_summary_comments``).
    Column("version", Integer, nullable=False),
    # A deleted post stays as a tombstone, so a late older event cannot bring it back.
    Column("deleted", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("post_id", name="pk_post_summaries"),
)
_live = ~post_summaries.c.deleted
Index(
    "ix_post_summaries_board_created",
    post_summaries.c.board_id,
    post_summaries.c.created_at.desc(),
    post_summaries.c.post_id.desc(),
    postgresql_where=_live,
)
Index(
    "ix_post_summaries_author_created",
    post_summaries.c.author_id,
    post_summaries.c.created_at.desc(),
    postgresql_where=_live,
)
Index("ix_post_summaries_created", post_summaries.c.created_at.desc(), postgresql_where=_live)
# Title search: ILIKE '%q%' uses a trigram GIN index instead of scanning every row.
Index(
    "ix_post_summaries_title_trgm",
    post_summaries.c.title,
    postgresql_using="gin",
    postgresql_ops={"title": "gin_trgm_ops"},
)

#: The comment set behind ``post_summaries.comment_count`` (chassis.child_sets): one row per
#: comment id seen, a deleted comment as a tombstone.
post_summary_comments = child_table("post_summary_comments", metadata)

#: The totals of the post lists (chassis.list_counts): ``(scope, key) -> live`` per board, per
#: author and for all posts, moved by the projector in the statement that writes a summary.
post_list_counts = list_counts_table("post_list_counts", metadata)

#: The filters of the post lists whose total is kept: ``GET /api/boards/{id}/posts`` (board),
#: ``GET /api/posts`` (all) and ``GET /api/posts?author_id`` (author). A title search (``q``)
#: counts its matches instead: it is selective, and its matches cannot be counted ahead.
POST_LIST_COUNTS = ListCounts(
    post_summaries,
    post_list_counts,
    (Scope("all"), Scope("board", ("board_id",)), Scope("author", ("author_id",))),
)

#: Plain SQL, idempotent: set every post-list counter from ``post_summaries`` (one scan) and
#: return how many were wrong. For summaries loaded in bulk (a benchmark's seed) with the worker
#: stopped; a rebuild runs the same on its fresh tables before the swap.
RECOUNT_LIST_COUNTS = POST_LIST_COUNTS.recount_sql()
