"""CQRS read model storage: ``member_activity`` counters, their checkpoint, and the rebuild-and-swap.

The live projector and the rebuild exclude each other with a PostgreSQL advisory lock: every
projector transaction takes it shared, the rebuild takes it exclusive for its whole run, so no
event is applied to a table that is about to be swapped out.
"""

from __future__ import annotations

import uuid
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from sqlalchemy import column, func, select, table, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.checkpoints import load_checkpoint, save_checkpoint
from chassis.db import inbox_table, projection_checkpoint_table
from chassis.logging import get_logger
from chassis.messaging.consumer import Handler
from chassis.messaging.envelope import Envelope
from chassis.metrics import PROJECTION_CHECKPOINT
from member.adapters.orm import ACTIVITY_TABLE, member_activity
from member.domain.activity import COUNTERS, Delta, MalformedEvent, deltas_for, fold
from member.service_layer.activity import CONSUMER, PROJECTION
from member.service_layer.ports import LogPosition

log = get_logger(__name__)

REBUILD_LOCK = zlib.crc32(f"projection-rebuild:{PROJECTION}".encode())
REBUILD_TABLE = f"{ACTIVITY_TABLE}_rebuild"
checkpoints = projection_checkpoint_table


class SqlActivityRepository:
    """Projector side: counters upserted per member, checkpoint advanced in the same transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def exclude_rebuild(self) -> None:
        await self.session.execute(select(func.pg_advisory_xact_lock_shared(REBUILD_LOCK)))

    async def next_offset(self, topic: str, partition: int) -> int:
        return await load_checkpoint(self.session, PROJECTION, topic, partition)

    async def advance(self, position: LogPosition) -> None:
        await save_checkpoint(
            self.session, PROJECTION, position.topic, position.partition, position.offset + 1
        )

    async def apply(self, deltas: Iterable[Delta]) -> None:
        per_member: dict[uuid.UUID, dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(COUNTERS, 0)
        )
        for delta in deltas:
            per_member[delta.member_id][delta.counter] += delta.amount
        for member_id, counters in per_member.items():
            statement = insert(member_activity).values(member_id=member_id, **counters)
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[member_activity.c.member_id],
                    set_={
                        **{c: member_activity.c[c] + statement.excluded[c] for c in COUNTERS},
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
    """Replay the source topics from the beginning into a fresh table and swap it in atomically.

    Everything happens in one transaction under the exclusive rebuild lock: the live projector
    waits, then finds the checkpoint moved to the replay's end offsets and skips what the new
    table already holds. A failed rebuild rolls back and leaves the old table in place."""
    report = RebuildReport()
    counters: dict[uuid.UUID, dict[str, int]] = {}
    seen: set[str] = set()
    async with sessions() as session, session.begin():
        await session.execute(select(func.pg_advisory_xact_lock(REBUILD_LOCK)))
        live = {
            (row.topic, row.partition): row.next_offset
            for row in await session.execute(
                select(checkpoints).where(checkpoints.c.projection == PROJECTION)
            )
        }
        # Events the live projector has not reached yet: their ids go to the inbox too, so a
        # later redelivery of the same id is not counted twice.
        unseen_by_live: list[str] = []

        async def on_event(env: Envelope) -> None:
            report.events += 1
            if env.id in seen:
                report.duplicates += 1
                return
            seen.add(env.id)
            try:
                deltas = deltas_for(env.type, env.data)
            except MalformedEvent as exc:
                report.malformed += 1
                log.warning("activity.rebuild_skipped_event", event_id=env.id, error=str(exc))
                return
            if deltas:
                fold(deltas, counters)
                if env.offset >= live.get((env.topic, env.partition), 0):
                    unseen_by_live.append(env.id)

        end = await replay(on_event)

        await session.execute(text(f"DROP TABLE IF EXISTS {REBUILD_TABLE}"))
        await session.execute(
            text(f"CREATE TABLE {REBUILD_TABLE} (LIKE {ACTIVITY_TABLE} INCLUDING ALL)")
        )
        target = table(REBUILD_TABLE, column("member_id"), *(column(c) for c in COUNTERS))
        rows = [{"member_id": member_id, **values} for member_id, values in counters.items()]
        for start in range(0, len(rows), 1000):
            await session.execute(target.insert(), rows[start : start + 1000])
        for start in range(0, len(unseen_by_live), 1000):
            await session.execute(
                insert(inbox_table).on_conflict_do_nothing(),
                [
                    {"consumer": CONSUMER, "message_id": i}
                    for i in unseen_by_live[start : start + 1000]
                ],
            )
        await session.execute(text(f"DROP TABLE {ACTIVITY_TABLE}"))
        await session.execute(text(f"ALTER TABLE {REBUILD_TABLE} RENAME TO {ACTIVITY_TABLE}"))
        await session.execute(
            text(f"ALTER INDEX {REBUILD_TABLE}_pkey RENAME TO {ACTIVITY_TABLE}_pkey")
        )
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
    for tp, next_offset in end.items():
        PROJECTION_CHECKPOINT.labels(service, PROJECTION, tp.topic, str(tp.partition)).set(
            next_offset
        )
    report.members = len(counters)
    log.info("activity.rebuilt", events=report.events, members=report.members)
    return report
