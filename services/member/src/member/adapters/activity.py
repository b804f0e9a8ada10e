"""CQRS read model storage: ``member_activity`` counters, their item sets, their checkpoint, and the rebuild-and-swap.

Each counter is recomputed from ``member_activity_items`` (chassis.child_sets) whenever an event
touches one of the member's items, so it is a function of the set of events seen. The live
projector and the rebuild exclude each other with a PostgreSQL advisory lock: every projector
transaction takes it shared, the rebuild takes it exclusive for its whole run, so no event is
applied to a table that is about to be swapped out. The rebuild applies the events with the same
code as the live projector, into fresh tables.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, func, select, text
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis import child_sets
from chassis.checkpoints import load_checkpoint, save_checkpoint
from chassis.db import projection_checkpoint_table
from chassis.logging import get_logger
from chassis.messaging.consumer import Handler
from chassis.messaging.envelope import Envelope
from chassis.metrics import PROJECTION_CHECKPOINT
from member.adapters.tables import (
    ACTIVITY_TABLE,
    ITEMS_TABLE,
    member_activity,
    member_activity_items,
)
from member.domain.activity import COUNTERS, Item, MalformedEvent, items_for
from member.service_layer.activity import PROJECTION
from member.service_layer.ports import LogPosition

log = get_logger(__name__)

REBUILD_LOCK = zlib.crc32(f"projection-rebuild:{PROJECTION}".encode())
REBUILD_TABLE = f"{ACTIVITY_TABLE}_rebuild"
REBUILD_ITEMS = f"{ITEMS_TABLE}_rebuild"
checkpoints = projection_checkpoint_table


def _rebuild_tables() -> tuple[Table, Table]:
    """Descriptions of the rebuild's fresh tables (created with the live tables' shapes)."""
    meta = MetaData()
    activity = Table(
        REBUILD_TABLE,
        meta,
        Column("member_id", UUID(as_uuid=True), primary_key=True),
        *(Column(c, Integer, nullable=False) for c in COUNTERS),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    return activity, child_sets.child_table(REBUILD_ITEMS, meta, single_writer=True)


class SqlActivityRepository:
    """Projector side: items merged, their members' counters recomputed, checkpoint advanced,
    all in one transaction. ``activity`` and ``items`` are the live tables or a rebuild's."""

    def __init__(
        self,
        session: AsyncSession,
        activity: Table = member_activity,
        items: Table = member_activity_items,
    ) -> None:
        self.session = session
        self.activity = activity
        self.items = items

    async def exclude_rebuild(self) -> None:
        await self.session.execute(select(func.pg_advisory_xact_lock_shared(REBUILD_LOCK)))

    async def next_offset(self, topic: str, partition: int) -> int:
        return await load_checkpoint(self.session, PROJECTION, topic, partition)

    async def advance(self, position: LogPosition) -> None:
        await save_checkpoint(
            self.session, PROJECTION, position.topic, position.partition, position.offset + 1
        )

    async def apply(self, items: Iterable[Item]) -> None:
        children = [
            child_sets.Child(i.counter, i.item_id, i.member_id, i.present, i.weight) for i in items
        ]
        members = await child_sets.record(self.session, self.items, children)
        a = self.activity
        for member_id in sorted(members):
            counters = {c: child_sets.tally(self.items, c, member_id) for c in COUNTERS}
            statement = insert(a).values(member_id=member_id, updated_at=func.now(), **counters)
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[a.c.member_id],
                    set_={
                        **{c: statement.excluded[c] for c in COUNTERS},
                        "updated_at": func.now(),
                    },
                )
            )


Replay = Callable[[Handler], Awaitable[dict[TopicPartition, int]]]


@dataclass
class RebuildReport:
    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    members: int = 0
    end_offsets: dict[str, int] = field(default_factory=dict)


async def rebuild_activity(
    sessions: async_sessionmaker[AsyncSession], replay: Replay, *, service: str
) -> RebuildReport:
    """Replay the source topics from the beginning into fresh tables and swap them in atomically.

    Everything happens in one transaction under the exclusive rebuild lock: the live projector
    waits, then finds the checkpoint moved to the replay's end offsets and skips what the new
    tables already hold. The events are applied by the live projector's own code, so both give
    the same state. A failed rebuild rolls back and leaves the old tables in place."""
    report = RebuildReport()
    seen: set[str] = set()
    fresh_activity, fresh_items = _rebuild_tables()
    async with sessions() as session, session.begin():
        await session.execute(select(func.pg_advisory_xact_lock(REBUILD_LOCK)))
        for fresh, live in ((fresh_activity, ACTIVITY_TABLE), (fresh_items, ITEMS_TABLE)):
            await session.execute(text(f"DROP TABLE IF EXISTS {fresh.name}"))
            await session.execute(text(f"CREATE TABLE {fresh.name} (LIKE {live} INCLUDING ALL)"))
        repository = SqlActivityRepository(session, fresh_activity, fresh_items)

        async def on_event(env: Envelope) -> None:
            report.events += 1
            if env.id in seen:  # harmless to apply again; skipping it only saves the work
                report.duplicates += 1
                return
            seen.add(env.id)
            try:
                items = items_for(env.type, env.data)
            except MalformedEvent as exc:
                report.malformed += 1
                log.warning("activity.rebuild_skipped_event", event_id=env.id, error=str(exc))
                return
            if items:
                await repository.apply(items)

        end = await replay(on_event)

        for fresh, live in ((fresh_activity, ACTIVITY_TABLE), (fresh_items, ITEMS_TABLE)):
            await session.execute(text(f"DROP TABLE {live}"))
            await session.execute(text(f"ALTER TABLE {fresh.name} RENAME TO {live}"))
        # LIKE ... INCLUDING ALL named the copies' indexes after the fresh tables: give them
        # the names the migrations gave the live ones, so the next rebuild finds them
        for old, new in (
            (f"{REBUILD_TABLE}_pkey", f"{ACTIVITY_TABLE}_pkey"),
            (f"{REBUILD_ITEMS}_pkey", f"pk_{ITEMS_TABLE}"),
            (f"{REBUILD_ITEMS}_parent_id_kind_idx", f"ix_{ITEMS_TABLE}_parent"),
        ):
            await session.execute(text(f"ALTER INDEX {old} RENAME TO {new}"))
        for tp, next_offset in end.items():
            statement = insert(checkpoints).values(
                projection=PROJECTION,
                topic=tp.topic,
                partition=tp.partition,
                next_offset=next_offset,
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[
                        checkpoints.c.projection,
                        checkpoints.c.topic,
                        checkpoints.c.partition,
                    ],
                    set_={"next_offset": statement.excluded.next_offset, "updated_at": func.now()},
                )
            )
            report.end_offsets[f"{tp.topic}:{tp.partition}"] = next_offset
        report.members = int(
            await session.scalar(select(func.count()).select_from(member_activity)) or 0
        )
    for tp, next_offset in end.items():
        PROJECTION_CHECKPOINT.labels(service, PROJECTION, tp.topic, str(tp.partition)).set(
            next_offset
        )
    log.info("activity.rebuilt", events=report.events, members=report.members)
    return report
