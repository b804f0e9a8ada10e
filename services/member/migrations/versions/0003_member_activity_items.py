"""The item sets behind member_activity's counters; the points items filled from this database.

The counters were kept as +1/-1 deltas, so an event lost to the dead-letter topic and replayed
later, or delivered again under another id, moved them wrongly. Every counter is now the total
of the member's alive items in ``member_activity_items`` (chassis.child_sets).

Points have their sources in this database (``members`` for the sign-up grant, ``point_transfers``
for each saga's transfer and refund), so this migration fills the points items from them and
recomputes ``member_activity.points``. Posts, comments, questions, answers and accepted answers
come from the board and qna databases, which a migration of this one must not read: run
``member rebuild-read-model`` once after this migration and before starting the worker. Until then
the first event for a member would recount that member's other counters from an empty set.

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
        "member_activity_items",
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("child_id", sa.String(100), nullable=False),
        sa.Column("parent_id", UUID(as_uuid=True), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("alive", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "child_id", name="pk_member_activity_items"),
    )
    op.create_index(
        "ix_member_activity_items_parent", "member_activity_items", ["parent_id", "kind"]
    )
    # the sign-up grant (member.domain.model.SIGNUP_POINTS, 100 when this was written), and
    # each saga's transfer as the payer's -amount and the payee's +amount, gone if refunded
    op.execute(
        "INSERT INTO member_activity_items (kind, child_id, parent_id, weight, alive) "
        "SELECT 'points', 'signup:' || id::text, id, 100, true FROM members"
    )
    op.execute(
        "INSERT INTO member_activity_items (kind, child_id, parent_id, weight, alive) "
        "SELECT 'points', saga_id || ':' || 'payer', from_member_id, -amount, refunded_at IS NULL "
        "FROM point_transfers"
    )
    op.execute(
        "INSERT INTO member_activity_items (kind, child_id, parent_id, weight, alive) "
        "SELECT 'points', saga_id || ':' || 'payee', to_member_id, amount, refunded_at IS NULL "
        "FROM point_transfers"
    )
    op.execute(
        "INSERT INTO member_activity (member_id, points) "
        "SELECT parent_id, sum(weight) FROM member_activity_items "
        "WHERE kind = 'points' AND alive GROUP BY parent_id "
        "ON CONFLICT (member_id) DO UPDATE SET points = excluded.points, updated_at = now()"
    )


def downgrade() -> None:
    op.drop_table("member_activity_items")
