"""Background loops of the worker: the view-count flush and the projection checkpoint report.

``board.bootstrap.build_worker`` runs each in a ``chassis.periodic.PeriodicTask`` (backs off during
an outage, resumes by itself), stopped with the consumers on SIGTERM; the flush runs once more on the way out so no counted view
waits in Redis for the next start.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.db import projection_checkpoint_table
from chassis.logging import get_logger
from chassis.metrics import PROJECTION_CHECKPOINT

log = get_logger(__name__)


class PendingViews(Protocol):
    """Where the API counts views (``board.adapters.view_counter.ViewCounter``)."""

    async def take(self, limit: int = ...) -> dict[uuid.UUID, int]: ...

    async def give_back(self, counts: Mapping[uuid.UUID, int]) -> None: ...


def view_count_flush(
    pending: PendingViews,
    record: Callable[[Mapping[uuid.UUID, int]], Awaitable[None]],
) -> Callable[[], Awaitable[int]]:
    """Move the counted views into the database with ``record``; returns how many were moved.
    Counts whose ``record`` failed go back to Redis for the next flush; if Redis cannot take them
    back either (both down at once), they are kept in this process for the next flush: none is
    lost."""
    unsaved: Counter[uuid.UUID] = Counter()

    async def flush() -> int:
        moved = 0
        while True:
            counts: Counter[uuid.UUID] = Counter(unsaved)
            unsaved.clear()
            if not counts:
                counts.update(await pending.take())
            if not counts:
                break
            try:
                await record(counts)
            except Exception:
                try:
                    await pending.give_back(counts)
                except Exception:
                    unsaved.update(counts)
                    log.warning("views.kept_in_memory", posts=len(counts))
                raise
            moved += sum(counts.values())
        if moved:
            log.info("views.flushed", views=moved)
        return moved

    return flush


def checkpoint_report(
    sessions: async_sessionmaker[AsyncSession], service: str
) -> Callable[[], Awaitable[None]]:
    """Publish every stored projection checkpoint as a metric, including a running rebuild's."""

    async def report() -> None:
        t = projection_checkpoint_table
        async with sessions() as session:
            rows = await session.execute(
                select(t.c.projection, t.c.topic, t.c.partition, t.c.next_offset)
            )
            for row in rows:
                PROJECTION_CHECKPOINT.labels(
                    service, row.projection, row.topic, str(row.partition)
                ).set(row.next_offset - 1)

    return report
