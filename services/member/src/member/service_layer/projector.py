"""CQRS read model: board, qna and member integration events fold into ``member_activity``.

Each counter is the total of a set of items (``member.domain.activity``), recomputed from
``member_activity_items`` (``chassis.child_sets``) whenever an event touches one of the member's
items, so the read model is the same whatever the order and multiplicity of the events
(docs/CONVENTIONS.md "Failures of consumers"): an event replayed from the DLQ after newer ones
is merged, a duplicate changes nothing.

``READ_MODEL`` hands :func:`apply` to ``chassis.read_model``, which runs it live (the inbox, the
checkpoint and the lock against a rebuild's swap, in the consumer's transaction) and in the
two-phase rebuild, into fresh copies of the tables. Unlike board's and qna's projectors, the
counting rules are pure and live in the domain (``domain/activity.py``); this module only
writes what they return.
"""

from __future__ import annotations

import functools
import uuid

from sqlalchemy import Table, bindparam, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import child_sets
from chassis.db import CompiledWrite
from chassis.messaging.envelope import Envelope
from chassis.messaging.failures import PermanentFailure
from chassis.read_model import ReadModel, Tables
from member.adapters.tables import (
    ACTIVITY_TABLE,
    ITEMS_TABLE,
    member_activity,
    member_activity_items,
)
from member.domain.activity import COUNTERS, MalformedEvent, items_for

#: Inbox consumer name and the live consumer's group id.
CONSUMER = "member-activity"
SOURCE_TOPICS = ("board.events", "qna.events", "member.events")


async def apply(session: AsyncSession, tables: Tables, env: Envelope) -> frozenset[uuid.UUID]:
    """Merge what ``env`` says about counted items into ``tables`` (keyed by the live names
    ``member_activity`` and ``member_activity_items``: the live tables or a rebuild's fresh
    ones) and recount the members they belong to; returns those members (none for an event
    the read model ignores).

    Raises ``PermanentFailure`` for a body it cannot read: no retry can fix it, so the live
    consumer dead-letters it at once and a rebuild skips it."""
    try:
        items = items_for(env.type, env.data)
    except MalformedEvent as exc:
        raise PermanentFailure(str(exc)) from exc
    if not items:
        return frozenset()
    activity, item_table = tables[ACTIVITY_TABLE], tables[ITEMS_TABLE]
    children = [
        child_sets.Child(i.counter, i.item_id, i.member_id, i.present, i.weight) for i in items
    ]
    members = await child_sets.record(session, item_table, children)
    recount = _recount(activity, item_table)
    for member_id in sorted(members):
        await recount.execute(session, member_id=member_id)
    return members


@functools.lru_cache(maxsize=8)
def _recount(activity: Table, item_table: Table) -> CompiledWrite:
    """Every counter of one member (``member_id``) recounted from its items, compiled once per
    pair of tables (the live ones, a rebuild's fresh ones): an ``ON CONFLICT`` is compiled
    again at each execution otherwise."""
    member_id = bindparam("member_id", type_=activity.c.member_id.type)
    counters = {c: child_sets.tally(item_table, c, member_id) for c in COUNTERS}
    statement = insert(activity).values(member_id=member_id, updated_at=func.now(), **counters)
    return CompiledWrite(
        statement.on_conflict_do_update(
            index_elements=[activity.c.member_id],
            set_={**{c: statement.excluded[c] for c in COUNTERS}, "updated_at": func.now()},
        )
    )


#: The ``member_activity`` read model: checkpoint projection name and lock key
#: ``member_activity``; no ``before_swap``/``after_swap`` hooks, because it reads nothing but
#: the topics.
READ_MODEL = ReadModel(
    name=ACTIVITY_TABLE,
    consumer=CONSUMER,
    topics=SOURCE_TOPICS,
    tables=(member_activity, member_activity_items),
    apply=apply,
)
