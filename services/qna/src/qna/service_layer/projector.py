"""CQRS read model: the projection of qna.events and member.events into ``question_summaries``.

What this module owns is the projection itself, one event at a time (:func:`apply`), and its
declaration as a ``chassis.read_model.ReadModel`` (:data:`READ_MODEL`). The chassis runs it: live
in the worker (``qna.entrypoints.event_handlers.read_model_handler``: inbox, apply and checkpoint
in one transaction) and in ``qna rebuild-read-model`` (a replay of both topics into fresh tables
beside the live projector, then a swap; ``chassis.read_model.rebuild``).

The projection is a function of the *set* of events seen, not of their order or multiplicity
(docs/CONVENTIONS.md "Failures of consumers"), which is what lets the rebuild run beside the live
projector. Title, bounty and author are a register guarded by the version of the newest
QuestionAsked/Updated; ``status`` by the version of the newest event that sets it (Asked,
Updated, Closed, Reopened), since Closed and Reopened carry nothing else; a deleted question is a
blanked tombstone that no event revives. ``answer_count`` is not a delta: it is the number of
alive answers in the question's answer set (``question_summary_answers``,
:mod:`chassis.child_sets`), where a deleted answer leaves a tombstone, so an answer event replayed
from the DLQ after newer events still counts, and a duplicate counts once. An event that
overtakes QuestionAsked starts a hidden placeholder row (``version`` 0, ``deleted``) that
QuestionAsked or QuestionUpdated fills in.

Nicknames come from the projector's own ``question_summary_authors`` copy of member.events, so
the read model depends on nothing but the two topics; that is why qna needs no ``before_swap``
hook, unlike board, whose read model also reads write-side tables.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, bindparam, case, false, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from chassis import child_sets
from chassis.db import CompiledWrite
from chassis.messaging.envelope import Envelope
from chassis.messaging.failures import PermanentFailure
from chassis.read_model import ReadModel, Tables
from qna.adapters.tables import (
    QUESTION_LIST_COUNTS,
    question_list_counts,
    question_summaries,
    question_summary_answers,
    question_summary_authors,
)

#: The kind of a question's children in the answer set.
ANSWERS = "answers"


@dataclass(frozen=True)
class _Tables:
    """The tables one application of an event writes: the live ones, or a rebuild's fresh
    copies (``chassis.read_model.Tables`` maps each live name to the table to write)."""

    summaries: Table
    authors: Table
    answers: Table
    #: every table by live name, the list counters included (``chassis.list_counts``)
    tables: Tables

    @classmethod
    def of(cls, tables: Tables) -> _Tables:
        return cls(
            tables[question_summaries.name],
            tables[question_summary_authors.name],
            tables[question_summary_answers.name],
            tables,
        )


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


def _author_values(t: _Tables, author_id: ColumnElement[Any]) -> dict[str, Any]:
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
    session: AsyncSession, t: _Tables, kind: str, event: _QuestionEvent
) -> None:
    """Merge one question event into its row (started as a hidden placeholder if absent)."""
    question_id = event.question_id
    if isinstance(event, _AnswerChanged):
        answer = child_sets.Child(
            ANSWERS, str(event.answer_id), question_id, alive=kind == "AnswerPosted"
        )
        await child_sets.record(session, t.answers, [answer])
    else:  # the count below must not miss an answer another transaction is adding
        await child_sets.lock_parents(session, t.answers, [question_id])
    content = isinstance(event, _QuestionAsked | _QuestionUpdated)
    status = event.status if isinstance(event, _QuestionAsked | _QuestionUpdated) else None
    status = status or _STATUS_OF.get(kind)
    values: dict[str, Any] = {
        "id": question_id,
        "title": "",
        "bounty": 0,
        "author_id": None,
        "status": status or "OPEN",
        "status_version": event.version if status else 0,
        "accepted_answer_id": event.answer_id if isinstance(event, _AnswerAccepted) else None,
        "version": event.version if content or kind == "QuestionDeleted" else 0,
        "created_at": event.created_at if isinstance(event, _QuestionAsked) else event.occurred_at,
        "updated_at": event.occurred_at,
    }
    if isinstance(event, _QuestionAsked | _QuestionUpdated):
        if event.author_id is not None:
            await child_sets.lock_keys(session, t.answers, [_author_key(event.author_id)])
        values.update(title=event.title, bounty=event.bounty, author_id=event.author_id)
    # the list counters follow the row (a status move, a deletion) in the same statement
    merge = _merge_question(tuple(sorted(t.tables.items())), kind, status is not None)
    await merge.execute(session, **values)


#: The summary columns given by the event (the rest come from SQL or from the event's kind).
_VALUES = (
    *("id", "title", "bounty", "author_id", "status", "status_version", "accepted_answer_id"),
    *("version", "created_at", "updated_at"),
)


@functools.lru_cache(maxsize=64)
def _merge_question(
    tables: tuple[tuple[str, Table], ...], kind: str, has_status: bool
) -> CompiledWrite:
    """The merge of one question event of ``kind`` into its summary row, its counters moving
    in the same statement, with a named parameter per value of :data:`_VALUES`: compiled once
    per kind and tables (the live ones, a rebuild's fresh ones), since SQLAlchemy compiles an
    ``ON CONFLICT`` again at every execution. ``tables``: live name -> table, as pairs."""
    t = _Tables.of(dict(tables))
    s = t.summaries
    params = {n: bindparam(n, type_=s.c[n].type) for n in _VALUES}
    question_id = params["id"]
    content = kind in ("QuestionAsked", "QuestionUpdated")
    tombstone = kind == "QuestionDeleted"
    row: dict[str, Any] = {
        **params,
        "author_nickname": None,
        "author_withdrawn": False,
        "answer_count": child_sets.tally(t.answers, ANSWERS, question_id),
        # hidden until QuestionAsked/Updated fills it in, and for good once deleted
        "deleted": not content,
    }
    if content:
        row.update(_author_values(t, params["author_id"]))
    counted = QUESTION_LIST_COUNTS.insert_row(t.tables, row, lambda s: s.c.id == question_id)
    stmt = counted.write
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
    if has_status:
        newer_status = s.c.status_version < new.status_version
        set_["status"] = case((newer_status, new.status), else_=s.c.status)
        set_["status_version"] = func.greatest(s.c.status_version, new.status_version)
    if kind == "QuestionAsked":
        set_["created_at"] = new.created_at
    if kind == "AnswerAccepted":
        set_["accepted_answer_id"] = new.accepted_answer_id
    write = stmt.on_conflict_do_update(index_elements=[s.c.id], set_=set_)
    return CompiledWrite(QUESTION_LIST_COUNTS.statement(t.tables, counted.before, write))


async def _apply_member_event(session: AsyncSession, t: _Tables, event: _MemberEvent) -> None:
    await child_sets.lock_keys(session, t.answers, [_author_key(event.member_id)])
    a, s = t.authors, t.summaries
    if isinstance(event, _MemberNamed):
        values: dict[str, Any] = {
            "nickname": event.nickname,
            "profile_version": event.profile_version,
        }
        summary_values: dict[str, Any] = {"author_nickname": event.nickname}
    else:
        # the nickname of a withdrawn member is erased here as in the write model's copy
        values = {"withdrawn": True, "nickname": None}
        summary_values = {"author_withdrawn": True, "author_nickname": None}
    stmt = pg_insert(a).values(member_id=event.member_id, **values)
    kept = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[a.c.member_id],
            set_={k: stmt.excluded[k] for k in values},
            # an older nickname (a replay from a DLQ) never overwrites a newer one, and none
            # comes back after the withdrawal erased it
            where=~a.c.withdrawn & (a.c.profile_version <= stmt.excluded.profile_version)
            if isinstance(event, _MemberNamed)
            else None,
        ).returning(a.c.member_id)
    )
    if kept.first() is None:
        return  # older than the copy, or withdrawn: the summaries keep what they show
    await session.execute(
        update(s).where(s.c.author_id == event.member_id).values(**summary_values)
    )


async def apply(session: AsyncSession, tables: Tables, env: Envelope) -> bool:
    """Apply one event to the read model in ``tables`` (live or fresh, by live table name).

    Returns False if the event does not concern the read model. Raises :class:`MalformedEvent`
    (a ``PermanentFailure``: dead-lettered live, skipped by a rebuild) for a body it cannot read,
    and whatever the database raises."""
    event = _parse(env)
    t = _Tables.of(tables)
    if isinstance(event, _QuestionEvent):
        await _apply_question_event(session, t, env.type, event)
    elif isinstance(event, _MemberEvent):
        await _apply_member_event(session, t, event)
    else:
        return False
    return True


#: The read model as the chassis runs it: checkpoint ``question_summaries``, inbox and consumer
#: group ``qna-projector``, the two topics, its tables with the summaries first, and the list
#: counters the rebuild recounts before the swap.
READ_MODEL = ReadModel(
    name="question_summaries",
    consumer="qna-projector",
    topics=("qna.events", "member.events"),
    tables=(
        question_summaries,
        question_summary_authors,
        question_summary_answers,
        question_list_counts,
    ),
    apply=apply,
    counts=(QUESTION_LIST_COUNTS,),
)
