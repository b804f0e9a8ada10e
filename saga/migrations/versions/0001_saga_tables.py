"""Saga instances and their step log.

The chassis tables come from the chassis branch, on which this revision depends.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
#: The chassis tables (outbox, inbox, idempotency keys, ...) come from the chassis branch.
depends_on = ("chassis_0001",)

ACTIVE = "status IN ('RUNNING', 'COMPENSATING')"


def upgrade() -> None:
    op.create_table(
        "saga_instances",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("initiator_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("lock_key", sa.String(200), nullable=True),
        sa.Column("current_step", sa.String(100), nullable=True),
        sa.Column("awaiting_command", sa.String(100), nullable=True),
        sa.Column("awaiting_attempt", sa.Integer(), nullable=True),
        sa.Column(
            "awaiting_compensation", sa.Boolean(), nullable=False, server_default=sa.text("false")
        ),
        sa.Column(
            "awaiting_dispatched", sa.Boolean(), nullable=False, server_default=sa.text("true")
        ),
        sa.Column("command_message_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('RUNNING', 'COMPENSATING', 'COMPLETED', 'COMPENSATED', 'FAILED')",
            name="ck_saga_instances_status",
        ),
    )
    # Semantic lock: at most one running saga per (type, key), e.g. one withdrawal per member.
    op.create_index(
        "uq_saga_instances_running_lock_key",
        "saga_instances",
        ["type", "lock_key"],
        unique=True,
        postgresql_where=sa.text(f"lock_key IS NOT NULL AND {ACTIVE}"),
    )
    # The sweeper's query: in-flight sagas by deadline.
    op.create_index(
        "ix_saga_instances_deadline",
        "saga_instances",
        ["deadline"],
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_index("ix_saga_instances_initiator_id", "saga_instances", ["initiator_id"])
    op.create_table(
        "saga_steps",
        sa.Column(
            "saga_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("saga_instances.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("participant", sa.String(50), nullable=False),
        sa.Column("command", sa.String(100), nullable=False),
        sa.Column("compensation", sa.String(100), nullable=True),
        sa.Column("forward_status", sa.String(20), nullable=False),
        sa.Column("compensation_status", sa.String(30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("saga_steps")
    op.drop_table("saga_instances")
