"""Text identity of emails and nicknames: canonical columns, backfilled in batches, unique.

docs/services/member.md ("Text identity"): emails and nicknames are compared after trimming, case
folding and Unicode NFC normalization. Until now the email was stored lower-cased under a unique
index and nicknames were unique by PostgreSQL's ``lower(nickname)``, so ``"홍길동"`` and its decomposed
spelling, or ``"Straße"`` and ``"STRASSE"``, were two members. This migration adds
``email_canonical`` and ``nickname_canonical`` (``member.domain.identity.canonical``), fills them in
Python (PostgreSQL has no full case folding) in batches of ``BATCH`` rows in key order, and replaces
the old unique indexes (and the lower-case check on ``email``, which now keeps the case the member
typed) with unique indexes on the new columns. Withdrawn members migrate like the others: their
erased email and nickname are unique per member id.

Rows that the new rule makes equal already exist in a database that ran the old one:

- **Nicknames**: the oldest member (``created_at``, then id) keeps the canonical nickname; each
  younger one gets ``<canonical>`` + ``DISAMBIGUATOR`` + ``<member id hex>`` as its key, which
  no nickname can produce (a nickname is printable; the separator is a control character). Their
  displayed nicknames do not change (nothing is renamed behind the member's back, and no event
  is needed), they keep logging in and writing, and a nickname change gives them an ordinary
  key. Each one is logged with both member ids.
- **Emails**: a login identifier cannot be given to one member and taken from another, so the
  migration refuses (``EmailIdentityCollision``, naming the member ids) and rolls back. The old
  schema stored lower-cased ASCII addresses under a unique index, so only rows written around
  the application can collide.

Rollout: the new columns are NOT NULL, so a replica of the previous version cannot sign a member
up once this migration ran (its insert leaves them empty); roll the new image out right after
``member migrate``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from member.domain.identity import canonical

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

#: Rows read and updated per round trip while backfilling.
BATCH = 1000
#: Separates a disambiguated nickname key from the member id; never part of a nickname.
DISAMBIGUATOR = "\x1f"


class EmailIdentityCollision(RuntimeError):
    """Two or more members' emails have one text identity; the migration cannot choose."""


#: The columns this migration reads and writes, as they are at this revision.
members = sa.table(
    "members",
    sa.column("id"),
    sa.column("email"),
    sa.column("nickname"),
    sa.column("status"),
    sa.column("created_at"),
    sa.column("email_canonical"),
    sa.column("nickname_canonical"),
)


def _backfill(conn: sa.Connection) -> int:
    """Fill both canonical columns, ``BATCH`` rows at a time in id order; returns the row count."""
    done, last = 0, None
    read = sa.select(members.c.id, members.c.email, members.c.nickname)
    write = (
        sa.update(members)
        .where(members.c.id == sa.bindparam("member_id"))
        .values(
            email_canonical=sa.bindparam("email_key"),
            nickname_canonical=sa.bindparam("nickname_key"),
        )
    )
    while True:
        page = read if last is None else read.where(members.c.id > last)
        rows = conn.execute(page.order_by(members.c.id).limit(BATCH)).all()
        if not rows:
            return done
        conn.execute(
            write,
            [
                {
                    "member_id": r.id,
                    "email_key": canonical(r.email),
                    "nickname_key": canonical(r.nickname),
                }
                for r in rows
            ],
        )
        done += len(rows)
        last = rows[-1].id


def _collisions(conn: sa.Connection, column: sa.ColumnClause[Any]) -> list[tuple[str, list[Any]]]:
    """Each key ``column`` holds for several members, with those members oldest first."""
    keys = conn.scalars(
        sa.select(column).group_by(column).having(sa.func.count() > 1).order_by(column)
    ).all()
    return [
        (
            key,
            list(
                conn.execute(
                    sa.select(members.c.id, members.c.status)
                    .where(column == key)
                    .order_by(members.c.created_at, members.c.id)
                ).all()
            ),
        )
        for key in keys
    ]


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column("members", sa.Column("email_canonical", sa.String(254), nullable=True))
    op.add_column("members", sa.Column("nickname_canonical", sa.Text(), nullable=True))
    count = _backfill(conn)
    log.info("text identity: canonical email and nickname of %d members", count)

    emails = _collisions(conn, members.c.email_canonical)
    if emails:
        described = "; ".join(
            f"{key!r}: members {', '.join(str(m.id) for m in holders)}" for key, holders in emails
        )
        raise EmailIdentityCollision(
            "several members' emails are the same text identity (trimmed, case folded, NFC); "
            f"change all but one of each group, then migrate again: {described}"
        )

    for key, (keeper, *younger) in _collisions(conn, members.c.nickname_canonical):
        for member in younger:
            conn.execute(
                sa.update(members)
                .where(members.c.id == member.id)
                .values(nickname_canonical=f"{key}{DISAMBIGUATOR}{member.id.hex}")
            )
            log.warning(
                "text identity: member %s (%s) keeps its nickname, which is the same as the older "
                "member %s's (%r); only %s may take that nickname again",
                member.id,
                member.status,
                keeper.id,
                key,
                keeper.id,
            )

    op.alter_column("members", "email_canonical", nullable=False)
    op.alter_column("members", "nickname_canonical", nullable=False)
    op.drop_constraint("ck_members_email_lower_case", "members", type_="check")
    op.drop_index("ux_members_email", table_name="members")
    op.drop_index("ux_members_nickname_lower", table_name="members")
    op.create_index("ux_members_email_canonical", "members", ["email_canonical"], unique=True)
    op.create_index("ux_members_nickname_canonical", "members", ["nickname_canonical"], unique=True)


def downgrade() -> None:
    # The old schema stored emails lower-cased. No two can meet: the canonical index already
    # kept ASCII addresses unique regardless of case.
    op.execute("UPDATE members SET email = lower(email)")
    op.drop_index("ux_members_nickname_canonical", table_name="members")
    op.drop_index("ux_members_email_canonical", table_name="members")
    op.create_index(
        "ux_members_nickname_lower", "members", [sa.text("lower(nickname)")], unique=True
    )
    op.create_index("ux_members_email", "members", ["email"], unique=True)
    op.create_check_constraint("ck_members_email_lower_case", "members", "email = lower(email)")
    op.drop_column("members", "nickname_canonical")
    op.drop_column("members", "email_canonical")
