"""CQRS read model: the projector that builds ``question_summaries`` from qna.events and member.events.

Guarantees:

- **idempotent**: the live projector records each event id in the inbox with its effect;
- **order- and multiplicity-safe** (docs/CONVENTIONS.md "Failures of consumers"): the row is a
  function of the set of events seen, not of their order. Title, bounty and author are a register
  guarded by the version of the newest QuestionAsked/Updated; ``status`` by the version of the
  newest event that sets it (Asked, Updated, Closed, Reopened), since Closed and Reopened carry
  nothing else; a deleted question is a blanked tombstone that no event revives. ``answer_count`` is
  not a delta: it is the number of alive answers in the question's answer set
  (``question_summary_answers``, :mod:`chassis.child_sets`), where a deleted answer leaves a
  tombstone, so an answer event replayed from the DLQ after newer events still counts, and a
  duplicate counts once. An event that overtakes QuestionAsked starts a hidden placeholder row
  (``version`` 0, ``deleted``) that QuestionAsked or QuestionUpdated fills in;
- **rebuildable**: ``qna rebuild-read-model`` replays both topics from the beginning into fresh
  tables, then swaps their contents in, in one transaction;
- **observable**: a checkpoint (next offset per topic partition) is stored with every effect and
  exported as ``projection_checkpoint_offset``; the consumer reports its lag.

Nicknames come from the projector's own ``question_summary_authors`` copy of member.events, so
the read model depends on nothing but the two topics.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import (
    MetaData,
    Table,
    case,
    delete,
    false,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis import checkpoints, child_sets
from chassis.db import (
    UnitOfWork,
    create_engine,
    create_session_factory,
)
from chassis.logging import get_logger
from chassis.messaging.consumer import replay
from chassis.messaging.envelope import Envelope
from chassis.messaging.failures import PermanentFailure
from chassis.metrics import PROJECTION_CHECKPOINT
from qna.adapters.tables import (
    question_summaries,
    question_summary_answers,
    question_summary_authors,
)
from qna.config import Settings

log = get_logger(__name__)

PROJECTION = "question_summaries"
INBOX_CONSUMER = "qna-projector"
TOPICS = ("qna.events", "member.events")
#: Advisory lock: projector transactions take it shared, a rebuild takes it exclusively, so no
#: live update can fall between the rebuild's replay and its swap.
READ_MODEL_LOCK = 0x514E_4152  # "QNAR"


@dataclass(frozen=True)
class ReadModelTables:
    summaries: Table
    authors: Table
    answers: Table


LIVE_TABLES = ReadModelTables(
    question_summaries, question_summary_authors, question_summary_answers
)
_rebuild_metadata = MetaData()
REBUILD_TABLES = ReadModelTables(
    *(
        table.to_metadata(_rebuild_metadata, name=f"rebuild_{table.name}")
        for table in (LIVE_TABLES.summaries, LIVE_TABLES.authors, LIVE_TABLES.answers)
    )
)
# written by the rebuild's one transaction alone: no per-question locks to accumulate
child_sets.mark_single_writer(REBUILD_TABLES.answers)
#: The kind of a question's children in the answer set.
ANSWERS = "answers"


class MalformedEvent(PermanentFailure, ValueError):
    """The event body is not what this projector understands: no retry can fix it, so the
    consumer dead-letters it at once."""


# ---------------------------------------------------------------- the projector's view of payloads


class _QuestionEvent(BaseModel):
    question_id: uuid.UUID
    version: int
    occurred_at: dt.datetime


class _QuestionAsked(_QuestionEvent):
    author_id: uuid.UUID | None
    title: str
    bounty: int
    status: str
    created_at: dt.datetime


class _QuestionUpdated(_QuestionEvent):
    author_id: uuid.UUID | None
    title: str
    bounty: int
    status: str


class _AnswerAccepted(_QuestionEvent):
    answer_id: uuid.UUID


class _AnswerChanged(_QuestionEvent):
    answer_id: uuid.UUID


class _MemberEvent(BaseModel):
    member_id: uuid.UUID


class _MemberNamed(_MemberEvent):
    nickname: str
    #: 0 for an event from before member versioned its profile
    profile_version: int = 0


_VIEWS: dict[str, type[BaseModel]] = {
    "QuestionAsked": _QuestionAsked,
    "QuestionUpdated": _QuestionUpdated,
    "QuestionDeleted": _QuestionEvent,
    "QuestionClosed": _QuestionEvent,
    "QuestionReopened": _QuestionEvent,
    "AnswerPosted": _AnswerChanged,
    "AnswerDeleted": _AnswerChanged,
    "AnswerAccepted": _AnswerAccepted,
    "QnaCommentAdded": _QuestionEvent,
    "QnaCommentDeleted": _QuestionEvent,
    "MemberRegistered": _MemberNamed,
    "MemberProfileChanged": _MemberNamed,
    "MemberWithdrawn": _MemberEvent,
}


def _parse(env: Envelope) -> BaseModel | None:
    view = _VIEWS.get(env.type)
    if view is None:
        return None  # an event the read model does not depend on
    try:
        return view.model_validate(env.data)
    except ValidationError as exc:
        raise MalformedEvent(f"{env.type} {env.id}: {exc}") from exc


# ---------------------------------------------------------------- applying one event


def _author_key(member_id: uuid.UUID) -> str:
    """The lock key shared by a summary that copies this author's byline and by the member event
    that changes it in every summary (``child_sets.lock_keys``): without it, a nickname change
    handled by another worker replica while a question is being asked updates every row but the
    uncommitted new one, which then keeps the old nickname for good."""
    return f"author:{member_id}"


def _author_values(t: ReadModelTables, author_id: uuid.UUID | None) -> dict[str, Any]:
    """The author columns of a summary, looked up in the projector's own member copy."""
    a = t.authors
    return {
        "author_id": author_id,
        "author_nickname": select(a.c.nickname).where(a.c.member_id == author_id).scalar_subquery(),
        "author_withdrawn": func.coalesce(
            select(a.c.withdrawn).where(a.c.member_id == author_id).scalar_subquery(), false()
        ),
    }


#: Title, bounty and author: set by QuestionAsked and QuestionUpdated, blanked by a tombstone.
_CONTENT = ("title", "bounty", "author_id", "author_nickname", "author_withdrawn")
#: The status each status-only event sets.
_STATUS_OF = {"QuestionClosed": "CLOSED", "QuestionReopened": "OPEN"}


async def _apply_question_event(
    session: AsyncSession, t: ReadModelTables, kind: str, event: _QuestionEvent
) -> None:
    """Merge one question event into its row (started as a hidden placeholder if absent)."""
    s = t.summaries
    question_id = event.question_id
    if isinstance(event, _AnswerChanged):
        answer = child_sets.Child(
            ANSWERS, str(event.answer_id), question_id, alive=kind == "AnswerPosted"
        )
        await child_sets.record(session, t.answers, [answer])
    else:  # the count below must not miss an answer another transaction is adding
        await child_sets.lock_parents(session, t.answers, [question_id])
    content = isinstance(event, _QuestionAsked | _QuestionUpdated)
    tombstone = kind == "QuestionDeleted"
    status = event.status if isinstance(event, _QuestionAsked | _QuestionUpdated) else None
    status = status or _STATUS_OF.get(kind)
    row: dict[str, Any] = {
        "id": question_id,
        "title": "",
        "bounty": 0,
        "author_id": None,
        "author_nickname": None,
        "author_withdrawn": False,
        "status": status or "OPEN",
        "status_version": event.version if status else 0,
        "answer_count": child_sets.tally(t.answers, ANSWERS, question_id),
        "accepted_answer_id": event.answer_id if isinstance(event, _AnswerAccepted) else None,
        # hidden until QuestionAsked/Updated fills it in, and for good once deleted
        "deleted": not content,
        "version": event.version if content or tombstone else 0,
        "created_at": event.created_at if isinstance(event, _QuestionAsked) else event.occurred_at,
        "updated_at": event.occurred_at,
    }
    if isinstance(event, _QuestionAsked | _QuestionUpdated):
        if event.author_id is not None:
            await child_sets.lock_keys(session, t.answers, [_author_key(event.author_id)])
        row.update(title=event.title, bounty=event.bounty, **_author_values(t, event.author_id))
    stmt = pg_insert(s).values(**row)
    new = stmt.excluded
    is_tombstone = s.c.deleted & (s.c.version > 0)
    set_: dict[str, Any] = {
        "answer_count": new.answer_count,
        "updated_at": func.greatest(s.c.updated_at, new.updated_at),
    }
    if content:
        newer = (s.c.version < new.version) & ~is_tombstone
        set_.update({c: case((newer, new[c]), else_=s.c[c]) for c in _CONTENT})
        set_["deleted"] = is_tombstone  # a placeholder becomes visible, a tombstone stays
        set_["version"] = func.greatest(s.c.version, new.version)
    if tombstone:
        set_.update({c: new[c] for c in _CONTENT})
        set_["deleted"] = True
        set_["version"] = func.greatest(s.c.version, new.version)
    if status:
        newer_status = s.c.status_version < new.status_version
        set_["status"] = case((newer_status, new.status), else_=s.c.status)
        set_["status_version"] = func.greatest(s.c.status_version, new.status_version)
    if isinstance(event, _QuestionAsked):
        set_["created_at"] = new.created_at
    if isinstance(event, _AnswerAccepted):
        set_["accepted_answer_id"] = new.accepted_answer_id
    await session.execute(stmt.on_conflict_do_update(index_elements=[s.c.id], set_=set_))


async def _apply_member_event(
    session: AsyncSession, t: ReadModelTables, event: _MemberEvent
) -> None:
    await child_sets.lock_keys(session, t.answers, [_author_key(event.member_id)])
    a, s = t.authors, t.summaries
    if isinstance(event, _MemberNamed):
        values: dict[str, Any] = {
            "nickname": event.nickname,
            "profile_version": event.profile_version,
        }
        summary_values: dict[str, Any] = {"author_nickname": event.nickname}
    else:
        values = {"withdrawn": True}
        summary_values = {"author_withdrawn": True}
    stmt = pg_insert(a).values(member_id=event.member_id, **values)
    kept = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[a.c.member_id],
            set_={k: stmt.excluded[k] for k in values},
            # an older nickname (a replay from a DLQ) never overwrites a newer one
            where=(a.c.profile_version <= stmt.excluded.profile_version)
            if isinstance(event, _MemberNamed)
            else None,
        ).returning(a.c.member_id)
    )
    if kept.first() is None:
        return  # older than the copy: the summaries keep the newer nickname
    await session.execute(
        update(s).where(s.c.author_id == event.member_id).values(**summary_values)
    )


async def apply(session: AsyncSession, tables: ReadModelTables, env: Envelope) -> bool:
    """Apply one event to the read model in ``tables``; False if the event does not concern it."""
    event = _parse(env)
    if isinstance(event, _QuestionEvent):
        await _apply_question_event(session, tables, env.type, event)
    elif isinstance(event, _MemberEvent):
        await _apply_member_event(session, tables, event)
    else:
        return False
    return True


async def save_checkpoint(
    session: AsyncSession, topic: str, partition: int, next_offset: int
) -> None:
    # never backwards: after a rebuild the live consumer re-reads what the replay covered
    await checkpoints.save_checkpoint(session, PROJECTION, topic, partition, next_offset)


# ---------------------------------------------------------------- the live projector (qna worker)


class Projector:
    """Consumer handler of the read model: one transaction per event (lock, inbox, effect, checkpoint)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], service: str) -> None:
        self.sessions = sessions
        self.service = service

    async def handle(self, env: Envelope) -> None:
        async with UnitOfWork(self.sessions, source=self.service) as uow:
            await uow.session.execute(select(func.pg_advisory_xact_lock_shared(READ_MODEL_LOCK)))
            if await uow.first_delivery(INBOX_CONSUMER, env.id):
                await apply(uow.session, LIVE_TABLES, env)
            await save_checkpoint(uow.session, env.topic, env.partition, env.offset + 1)
            await uow.commit()
        PROJECTION_CHECKPOINT.labels(self.service, PROJECTION, env.topic, str(env.partition)).set(
            env.offset
        )


# ---------------------------------------------------------------- rebuild (qna rebuild-read-model)


_PAIRS = (
    (LIVE_TABLES.summaries, REBUILD_TABLES.summaries),
    (LIVE_TABLES.authors, REBUILD_TABLES.authors),
    (LIVE_TABLES.answers, REBUILD_TABLES.answers),
)


async def rebuild(settings: Settings) -> dict[str, int]:
    """Replay qna.events and member.events from the beginning into fresh tables, then swap them in.

    One transaction holds the read-model lock exclusively: the live projector waits (its lag
    grows and is worked off afterwards, as no-ops up to the replayed offsets), readers keep
    seeing the old rows until the commit, and a failed rebuild changes nothing.
    """
    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    sessions = create_session_factory(engine)
    applied = skipped = 0
    try:
        async with sessions() as session, session.begin():
            await session.execute(select(func.pg_advisory_xact_lock(READ_MODEL_LOCK)))
            for live_table, fresh_table in _PAIRS:
                await session.execute(
                    text(
                        f"CREATE TEMP TABLE {fresh_table.name} "
                        f"(LIKE {live_table.name} INCLUDING ALL) ON COMMIT DROP"
                    )
                )

            async def handle(env: Envelope) -> None:
                nonlocal applied, skipped
                try:
                    if await apply(session, REBUILD_TABLES, env):
                        applied += 1
                except MalformedEvent as exc:
                    # the live projector dead-lettered it; a rebuild must not stop on it
                    skipped += 1
                    log.warning("projection.rebuild_skipped", error=str(exc))

            end = await replay(
                settings.kafka_connection(), [settings.topic(t) for t in TOPICS], handle
            )
            for live, fresh in _PAIRS:
                await session.execute(delete(live))
                await session.execute(
                    insert(live).from_select([c.name for c in fresh.c], select(fresh))
                )
            for tp, offset in end.items():
                await save_checkpoint(session, tp.topic, tp.partition, offset)
            questions = await session.scalar(
                select(func.count()).select_from(LIVE_TABLES.summaries)
            )
    finally:
        await engine.dispose()
    result = {"events": applied, "skipped": skipped, "questions": int(questions or 0)}
    log.info("projection.rebuilt", projection=PROJECTION, **result)
    return result
