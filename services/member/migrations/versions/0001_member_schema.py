"""Member schema: members, refresh tokens, point transfers, the activity read model.

The chassis tables come from the chassis branch, on which this revision depends.

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


def upgrade() -> None:

    op.create_table(
        "members",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("nickname", sa.String(40), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("withdrawal_saga_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("points >= 0", name="ck_members_points_not_negative"),
        sa.CheckConstraint("email = lower(email)", name="ck_members_email_lower_case"),
        sa.CheckConstraint("role IN ('USER', 'ADMIN')", name="ck_members_role"),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'WITHDRAWING', 'WITHDRAWN')", name="ck_members_status"
        ),
    )
    op.create_index("ux_members_email", "members", ["email"], unique=True)
    op.create_index(
        "ux_members_nickname_lower", "members", [sa.text("lower(nickname)")], unique=True
    )

    op.create_table(
        "refresh_tokens",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "member_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("members.id"), nullable=False
        ),
        sa.Column("family_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("parent_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ux_refresh_tokens_hash", "refresh_tokens", ["token_hash"], unique=True)
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_member", "refresh_tokens", ["member_id"])

    op.create_table(
        "point_transfers",
        sa.Column("saga_id", sa.String(64), primary_key=True),
        sa.Column(
            "from_member_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("members.id"),
            nullable=False,
        ),
        sa.Column(
            "to_member_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("members.id"),
            nullable=False,
        ),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(64), nullable=False),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount >= 0", name="ck_point_transfers_amount_not_negative"),
    )

    op.create_table(
        "member_activity",
        sa.Column("member_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("comments", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("questions", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("answers", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("accepted_answers", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("points", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        # Named explicitly: the rebuild renames its fresh table's key to this name.
        sa.PrimaryKeyConstraint("member_id", name="member_activity_pkey"),
    )


def downgrade() -> None:
    op.drop_table("member_activity")
    op.drop_table("point_transfers")
    op.drop_table("refresh_tokens")
    op.drop_table("members")
