"""Database per service: the member database's own tables (the chassis adds outbox, inbox, logs)."""

from __future__ import annotations

from sqlalchemy import (
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
    func,
)
from sqlalchemy.dialects.postgresql import UUID

from chassis.child_sets import child_table

metadata = MetaData()

members = Table(
    "members",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    # As typed (trimmed, NFC) for showing; identity lives in the *_canonical columns.
    Column("email", String(254), nullable=False),
    Column("nickname", String(40), nullable=False),
    # Text identity (member.domain.identity.canonical, docs/services/member.md): every uniqueness
    # check and lookup compares these. The address pattern keeps an email ASCII, so its key is no
    # longer than the email; a nickname's is unbounded here because full case folding may lengthen
    # it (U+FB2D ﬃ → "ffi"), and its length rule is enforced on the display form.
    Column("email_canonical", String(254), nullable=False),
    Column("nickname_canonical", Text, nullable=False),
    # NULL once withdrawn: no password can match.
    Column("password_hash", String(255), nullable=True),
    Column("role", String(10), nullable=False),
    Column("status", String(12), nullable=False),
    Column("points", Integer, nullable=False),
    Column("withdrawal_saga_id", String(64), nullable=True),
    Column("profile_version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("points >= 0", name="ck_members_points_not_negative"),
    CheckConstraint("role IN ('USER', 'ADMIN')", name="ck_members_role"),
    CheckConstraint("status IN ('ACTIVE', 'WITHDRAWING', 'WITHDRAWN')", name="ck_members_status"),
    Index("ux_members_email_canonical", "email_canonical", unique=True),
    Index("ux_members_nickname_canonical", "nickname_canonical", unique=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("member_id", UUID(as_uuid=True), ForeignKey("members.id"), nullable=False),
    Column("family_id", UUID(as_uuid=True), nullable=False),
    Column("parent_id", UUID(as_uuid=True), nullable=True),
    # SHA-256 of the opaque token; the token itself is never stored.
    Column("token_hash", String(64), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ux_refresh_tokens_hash", "token_hash", unique=True),
    Index("ix_refresh_tokens_family", "family_id"),
    Index("ix_refresh_tokens_member", "member_id"),
)

point_transfers = Table(
    "point_transfers",
    metadata,
    # One transfer per answer-acceptance saga: what RefundPoints must undo.
    Column("saga_id", String(64), primary_key=True),
    Column("from_member_id", UUID(as_uuid=True), ForeignKey("members.id"), nullable=False),
    Column("to_member_id", UUID(as_uuid=True), ForeignKey("members.id"), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("question_id", String(64), nullable=False),
    Column("transferred_at", DateTime(timezone=True), nullable=False),
    Column("refunded_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("amount >= 0", name="ck_point_transfers_amount_not_negative"),
)

ACTIVITY_TABLE = "member_activity"

member_activity = Table(
    ACTIVITY_TABLE,
    metadata,
    # No foreign key: a read model is rebuilt from events and may see a member first.
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("posts", Integer, nullable=False, server_default="0"),
    Column("comments", Integer, nullable=False, server_default="0"),
    Column("questions", Integer, nullable=False, server_default="0"),
    Column("answers", Integer, nullable=False, server_default="0"),
    Column("accepted_answers", Integer, nullable=False, server_default="0"),
    Column("points", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

ITEMS_TABLE = "member_activity_items"

#: The items behind every ``member_activity`` counter (chassis.child_sets): kind = the counter,
#: parent = the member; a deleted post, comment, question or answer and a refunded transfer
#: stay as tombstones.
member_activity_items = child_table(ITEMS_TABLE, metadata)
