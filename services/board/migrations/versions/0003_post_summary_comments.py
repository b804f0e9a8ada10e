"""The comment set behind post_summaries.comment_count, filled from the comments of this database.

The count was kept as +1/-1 deltas under the post version guard, so a comment event replayed
after a newer event of its post was dropped and the count stayed wrong. The count is now the
number of alive comments in ``post_summary_comments`` (chassis.child_sets). The write model is in
the same database, so this migration fills the set from ``comments`` (a soft-deleted comment as a
tombstone) and recomputes every summary's count from it: no rebuild is needed.

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
    op.create_table(
        "post_summary_comments",
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("child_id", sa.String(100), nullable=False),
        sa.Column("parent_id", UUID(as_uuid=True), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("alive", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "child_id", name="pk_post_summary_comments"),
    )
    op.create_index(
        "ix_post_summary_comments_parent", "post_summary_comments", ["parent_id", "kind"]
    )
    op.execute(
        "INSERT INTO post_summary_comments (kind, child_id, parent_id, weight, alive) "
        "SELECT 'comments', id::text, post_id, 1, deleted_at IS NULL FROM comments"
    )
    op.execute(
        "UPDATE post_summaries s SET comment_count = coalesce(("
        "SELECT sum(c.weight) FROM post_summary_comments c "
        "WHERE c.kind = 'comments' AND c.parent_id = s.post_id AND c.alive), 0)"
    )


def downgrade() -> None:
    op.drop_table("post_summary_comments")
