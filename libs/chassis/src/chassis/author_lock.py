"""Semantic lock (countermeasure to a saga's lack of isolation): a withdrawing member's writes are refused.

docs/sagas.md: "From step 1 on, every write by the member in board and qna is refused with 403
[...]; CancelWithdrawal lifts that". Two messages of a withdrawal saga reach board and qna, on
two topics and in no fixed order between them, and each sets the mark on its own:

- member's ``MemberWithdrawalStarted {member_id, saga_id}`` on ``member.events``, published with
  step 1, so the refusal starts at step 1 (``MemberWithdrawalCancelled`` with CancelWithdrawal
  lifts it);
- the service's own saga step (board's AnonymizeAuthor, qna's RetireAuthor) and its compensation
  RestoreAuthor. Without the step's mark, a write in flight while the step ran could commit after
  it and leave a row naming a withdrawn member, whenever the event comes.

The lock lives on the service's local copy of the member (its ``authors`` table), which must
have the columns ``member_id`` (primary key), ``withdrawn`` (bool), ``writes_refused_by_sagas``
(a text array, never null: the ids of the sagas that set a mark) and ``updated_at``:

- every write path of a member calls :func:`hold_for_write` first in its transaction: it takes
  ``FOR SHARE`` on the caller's row and refuses when any mark is set or the member withdrew;
- the step, and the started event, call :func:`mark_retiring`: ``FOR UPDATE`` on the same row
  waits for every write holding the share lock, so a write that committed first is seen (and
  anonymized) by the step, and a write that comes later sees the mark;
- the compensation, and the cancelled event, call :func:`lift` with the same saga id;
  completion (``MemberWithdrawn``) sets ``withdrawn``, which refuses for good.

The marks are a set of saga ids, not one value, so every order ends right. For one saga
``S`` the event and the step add the same mark (``S``) and either lift removes it.
``MemberWithdrawalCancelled(S)`` always comes after ``MemberWithdrawalStarted(S)`` on the
member's partition, after ``RestoreAuthor(S)`` (the saga compensates in reverse order), and
after the step's forward command or its refusal (a forward command that arrives after its
saga's compensation is refused without effect); so once the cancelled event is applied no mark
of ``S`` remains. Before it, ``RestoreAuthor(S)`` may already have lifted the mark: the saga is
then undoing itself and CancelWithdrawal follows. A started event that arrives late (after the
step and its compensation ran) only refuses writes until its cancelled event follows. A late
event of an earlier saga ``S1`` cannot lift the mark of a later ``S2`` (one value would let
it: ``S1``'s started event overwrite ``S2``, then ``S1``'s cancelled event clear it), and a
lift never touches ``withdrawn``.

Both sides lock the author row before any content row, so the two orders cannot deadlock.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Table, func, select, update
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
        select(authors.c.withdrawn, authors.c.writes_refused_by_sagas)
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
    if row.writes_refused_by_sagas:
        raise AuthorWithdrawing("the member is withdrawing")
    return False


async def mark_retiring(
    session: AsyncSession, authors: Table, member_id: uuid.UUID, saga_id: str
) -> None:
    """Add the mark of ``saga_id`` under ``FOR UPDATE`` of the member's row.

    Waits for every write that holds the share lock, so the caller's effect, run after this in
    the same transaction, sees those writes' rows. Idempotent: a mark is there once per saga.
    """
    await _ensure_row(session, authors, member_id)
    await session.execute(
        select(authors.c.member_id).where(authors.c.member_id == member_id).with_for_update()
    )
    marks = authors.c.writes_refused_by_sagas
    await session.execute(
        update(authors)
        .where(authors.c.member_id == member_id, ~marks.contains([saga_id]))
        .values(writes_refused_by_sagas=func.array_append(marks, saga_id), updated_at=utcnow())
    )


async def lift(session: AsyncSession, authors: Table, member_id: uuid.UUID, saga_id: str) -> None:
    """Compensation: remove the mark of ``saga_id`` (other sagas' marks, and ``withdrawn``,
    stay; a no-op when there is none)."""
    marks = authors.c.writes_refused_by_sagas
    await session.execute(
        update(authors)
        .where(authors.c.member_id == member_id, marks.contains([saga_id]))
        .values(writes_refused_by_sagas=func.array_remove(marks, saga_id), updated_at=utcnow())
    )
