"""Semantic lock on the author as a set of saga ids: MemberWithdrawalStarted and the saga's own step each mark.

One saga's late event can then never lift the mark of a later saga (chassis.author_lock).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "authors",
        sa.Column(
            "writes_refused_by_sagas",
            postgresql.ARRAY(sa.String(64)),
            nullable=False,
            server_default=sa.text("'{}'"),
        ),
    )
    op.execute(
        "UPDATE authors SET writes_refused_by_sagas = ARRAY[writes_refused_by_saga] "
        "WHERE writes_refused_by_saga IS NOT NULL"
    )
    op.drop_column("authors", "writes_refused_by_saga")


def downgrade() -> None:
    op.add_column("authors", sa.Column("writes_refused_by_saga", sa.String(64), nullable=True))
    # one column holds one mark: keep the latest
    op.execute(
        "UPDATE authors SET writes_refused_by_saga = "
        "writes_refused_by_sagas[cardinality(writes_refused_by_sagas)] "
        "WHERE cardinality(writes_refused_by_sagas) > 0"
    )
    op.drop_column("authors", "writes_refused_by_sagas")
