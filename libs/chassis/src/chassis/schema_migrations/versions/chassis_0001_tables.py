"""Chassis schema revision: the outbox, inbox, saga command log, idempotency and checkpoint tables.

The tables exactly as each service's revision 0001 created them before the chassis had a branch
of its own (``chassis_metadata.create_all``), so a database built then is already at this
revision: its service history depends on it, and Alembic never runs it there.

Revision ID: chassis_0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "chassis_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("chassis",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "inbox_messages",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        # The relay publishes in seq order; the unique constraint keeps PostgreSQL's default
        # name (outbox_messages_seq_key), as create_all gave it.
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The relay's scan: unpublished rows only, in seq order.
    op.create_index(
        "ix_outbox_unpublished",
        "outbox_messages",
        ["seq"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "projection_checkpoints",
        sa.Column("projection", sa.String(100), primary_key=True),
        sa.Column("topic", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer(), primary_key=True),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "saga_command_log",
        sa.Column("saga_id", sa.String(64), primary_key=True),
        sa.Column("command", sa.String(100), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("result", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    for table in (
        "saga_command_log",
        "projection_checkpoints",
        "outbox_messages",
        "inbox_messages",
        "idempotency_keys",
    ):
        op.drop_table(table)
