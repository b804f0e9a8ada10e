"""Saga trace context: the W3C trace context of a saga's last write, so the sweeper and the recovery continue its trace.

A re-sent command (a step timeout, a delayed retry, a restart's recovery) is staged by a
background task that no message started; without the stored context it began a new trace.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("saga_instances", sa.Column("trace_context", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("saga_instances", "trace_context")
