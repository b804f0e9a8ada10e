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

The lock lives on the service's local copy of the member, its ``authors`` table, defined once
here (:func:`authors_table`) and written through :class:`AuthorCopy`:

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

The same table is the service's read of member's nicknames (event-carried state transfer: the
service never calls member). :meth:`AuthorCopy.remember_nickname` keeps the newest nickname by
``profile_version``, so an older event (a replay from a dead-letter topic) never brings an old
name back; :meth:`AuthorCopy.mark_withdrawn` erases the nickname, and a nickname event that
arrives after it changes nothing: a withdrawn member's nickname is not kept anywhere.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    false,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.db import utcnow
from chassis.problems import Forbidden


class AuthorWithdrawing(Forbidden):
    """403: the member is withdrawing (a saga set the mark) or has withdrawn."""


#: Longest saga id a mark holds (the saga orchestrator's ids are UUIDs, 36 characters).
SAGA_ID_MAX_LENGTH = 64


def authors_table(metadata: MetaData, name: str = "authors") -> Table:
    """The local copy of member's members that board and qna each keep, with the semantic lock.

    One row per member id the service has heard of (from ``member.events``, a write or a saga
    step), columns:

    - ``member_id`` (UUID, primary key);
    - ``nickname`` (text, up to 100 characters; NULL until a ``MemberRegistered`` or
      ``MemberProfileChanged`` arrives, and again once the member withdrew), written by
      :meth:`AuthorCopy.remember_nickname` and erased by :meth:`AuthorCopy.mark_withdrawn`;
    - ``profile_version`` (int, default 0): the member's profile version of ``nickname``, the
      guard that keeps an older event from overwriting it (0 for events from before member
      versioned its profile);
    - ``withdrawn`` (bool, default false): set by ``MemberWithdrawn`` (:meth:`AuthorCopy.
      mark_withdrawn`), never cleared: the member's writes are refused for good;
    - ``writes_refused_by_sagas`` (array of text up to ``SAGA_ID_MAX_LENGTH``, default empty,
      never NULL): the semantic lock, the ids of the withdrawal sagas whose
      ``MemberWithdrawalStarted`` or withdrawal step marked the member
      (:meth:`AuthorCopy.mark_retiring`), removed by their ``MemberWithdrawalCancelled`` or
      compensation (:meth:`AuthorCopy.lift_retiring`);
    - ``updated_at`` (timestamptz, UTC): the last change; every writer here sets it, the
      server default ``now()`` covers a row inserted by hand.
    """
    return Table(
        name,
        metadata,
        Column("member_id", UUID(as_uuid=True), primary_key=True),
        Column("nickname", String(100), nullable=True),
        Column("withdrawn", Boolean, nullable=False, server_default=false()),
        Column("profile_version", Integer, nullable=False, server_default=text("0")),
        Column(
            "writes_refused_by_sagas",
            ARRAY(String(SAGA_ID_MAX_LENGTH)),
            nullable=False,
            server_default=text("'{}'"),
        ),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


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


class AuthorCopy:
    """The writes of one transaction (``session``) to a table made by :func:`authors_table`.

    A service's author repository extends it with its reads (how the service shows an author,
    what its writes need to know of the caller)."""

    def __init__(self, session: AsyncSession, table: Table) -> None:
        self.session = session
        self.table = table

    async def hold_for_write(self, member_id: uuid.UUID) -> bool:
        """Semantic lock, writer side: :func:`hold_for_write` (``FOR SHARE``; raises
        :class:`AuthorWithdrawing` while the member is withdrawing or withdrawn)."""
        return await hold_for_write(self.session, self.table, member_id)

    async def mark_retiring(self, member_id: uuid.UUID, saga_id: str) -> None:
        """Semantic lock, the withdrawal step's and ``MemberWithdrawalStarted``'s side:
        :func:`mark_retiring` (waits for writes in flight, then refuses more)."""
        await mark_retiring(self.session, self.table, member_id, saga_id)

    async def lift_retiring(self, member_id: uuid.UUID, saga_id: str) -> None:
        """The step's compensation and ``MemberWithdrawalCancelled``: :func:`lift`."""
        await lift(self.session, self.table, member_id, saga_id)

    async def remember_nickname(
        self, member_id: uuid.UUID, nickname: str, profile_version: int
    ) -> bool:
        """MemberRegistered / MemberProfileChanged: keep ``nickname`` unless the copy holds a
        newer one (a higher ``profile_version``) or the member has withdrawn. Returns True when
        it was kept, False when the event changed nothing."""
        t, now = self.table, utcnow()
        stmt = insert(t).values(
            member_id=member_id, nickname=nickname, profile_version=profile_version, updated_at=now
        )
        kept = await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.c.member_id],
                set_={
                    "nickname": stmt.excluded.nickname,
                    "profile_version": stmt.excluded.profile_version,
                    "updated_at": now,
                },
                # a withdrawn member's nickname is erased and stays erased; an event older than
                # the copy (a replay from a dead-letter topic) does not bring an old name back
                where=~t.c.withdrawn & (t.c.profile_version <= stmt.excluded.profile_version),
            ).returning(t.c.member_id)
        )
        return kept.first() is not None

    async def mark_withdrawn(self, member_id: uuid.UUID) -> None:
        """MemberWithdrawn: erase the nickname and set ``withdrawn`` (the row created if the
        service never heard of the member); the member's writes are refused for good."""
        now = utcnow()
        await self.session.execute(
            insert(self.table)
            .values(member_id=member_id, nickname=None, withdrawn=True, updated_at=now)
            .on_conflict_do_update(
                index_elements=[self.table.c.member_id],
                set_={"nickname": None, "withdrawn": True, "updated_at": now},
            )
        )
