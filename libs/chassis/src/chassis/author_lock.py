"""Semantic lock (countermeasure to a saga's lack of isolation): a withdrawing member's writes are refused.

A participant of member-withdrawal (board's AnonymizeAuthor, qna's RetireAuthor) hears of the
withdrawal only through its saga command. Without a lock, a write by the member that was in
flight while the step ran could commit after it and leave a row naming a withdrawn member
(DESIGN.md §3: "every write by the member in board and qna is refused with 403").

The lock lives on the service's local copy of the member (its ``authors`` table), which must
have the columns ``member_id`` (primary key), ``withdrawn`` (bool), ``writes_refused_by_saga``
(nullable text: the id of the saga that set the mark) and ``updated_at``:

- every write path of a member calls :func:`hold_for_write` first in its transaction: it takes
  ``FOR SHARE`` on the caller's row and refuses when the mark is set;
- the saga step calls :func:`mark_retiring` in the transaction of its effect: ``FOR UPDATE`` on
  the same row waits for every write holding the share lock, so a write that committed first is
  seen (and anonymized) by the step, and a write that comes later sees the mark;
- the compensation calls :func:`lift`; completion (MemberWithdrawn) keeps the row withdrawn.

Both sides lock the author row before any content row, so the two orders cannot deadlock.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.db import utcnow
from chassis.problems import Forbidden


class AuthorWithdrawing(Forbidden):
    """403: the member is withdrawing (a saga set the mark) or has withdrawn."""


async def _ensure_row(session: AsyncSession, authors: Table, member_id: uuid.UUID) -> None:
    # A member this service has never heard of still needs a row to lock: without it the
    # write and the step would lock nothing and the race would stay open.
    await session.execute(
        insert(authors)
        .values(member_id=member_id, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["member_id"])
    )


async def hold_for_write(session: AsyncSession, authors: Table, member_id: uuid.UUID) -> bool:
    """Take ``FOR SHARE`` on the member's author row until the transaction ends.

    Returns the row's ``withdrawn`` flag (False here, since a withdrawn member is refused).
    Raises :class:`AuthorWithdrawing` (403) when a withdrawal saga marked the member or the
    member has withdrawn.
    """
    locking = (
        select(authors.c.withdrawn, authors.c.writes_refused_by_saga)
        .where(authors.c.member_id == member_id)
        .with_for_update(read=True)
    )
    # One round trip on the common path (the row exists); a first write creates it, then locks.
    row = (await session.execute(locking)).first()
    if row is None:
        await _ensure_row(session, authors, member_id)
        row = (await session.execute(locking)).one()
    if row.withdrawn:
        raise AuthorWithdrawing("the member has withdrawn")
    if row.writes_refused_by_saga is not None:
        raise AuthorWithdrawing("the member is withdrawing")
    return False


async def mark_retiring(
    session: AsyncSession, authors: Table, member_id: uuid.UUID, saga_id: str
) -> None:
    """Set the mark for ``saga_id`` under ``FOR UPDATE`` of the member's row.

    Waits for every write that holds the share lock, so the caller's effect, run after this in
    the same transaction, sees those writes' rows. Idempotent for a repeated attempt.
    """
    await _ensure_row(session, authors, member_id)
    await session.execute(
        select(authors.c.member_id).where(authors.c.member_id == member_id).with_for_update()
    )
    await session.execute(
        update(authors)
        .where(authors.c.member_id == member_id)
        .values(writes_refused_by_saga=saga_id, updated_at=utcnow())
    )


async def lift(session: AsyncSession, authors: Table, member_id: uuid.UUID, saga_id: str) -> None:
    """Compensation: clear the mark ``saga_id`` set (a no-op if another saga's or none)."""
    await session.execute(
        update(authors)
        .where(authors.c.member_id == member_id, authors.c.writes_refused_by_saga == saga_id)
        .values(writes_refused_by_saga=None, updated_at=utcnow())
    )
