"""Background loops of the worker: the view-count flush and the projection checkpoint report.

Each is a ``chassis.lifecycle`` background service, stopped with the consumers on SIGTERM; the
flush runs once more on the way out so no counted view waits in Redis for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.db import projection_checkpoint_table
from chassis.logging import get_logger
from chassis.metrics import PROJECTION_CHECKPOINT

log = get_logger(__name__)


class PeriodicTask:
    """Run ``action`` every ``interval`` seconds until stopped (a failure is logged, not fatal)."""

    def __init__(
        self,
        name: str,
        action: Callable[[], Awaitable[object]],
        interval: float,
        *,
        run_on_stop: bool = False,
    ) -> None:
        self.name = name
        self.action = action
        self.interval = interval
        self.run_on_stop = run_on_stop
        self._stopping = asyncio.Event()

    async def _once(self) -> None:
        try:
            await self.action()
        except Exception:
            log.exception("periodic.failed", task=self.name)

    async def run(self) -> None:
        while not self._stopping.is_set():
            await self._once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
        if self.run_on_stop:
            await self._once()

    async def stop(self) -> None:
        self._stopping.set()


class PendingViews(Protocol):
    """Where the API counts views (``board.adapters.view_counter.ViewCounter``)."""

    async def take(self, limit: int = ...) -> dict[uuid.UUID, int]: ...

    async def give_back(self, counts: Mapping[uuid.UUID, int]) -> None: ...


def view_count_flush(
    pending: PendingViews,
    record: Callable[[Mapping[uuid.UUID, int]], Awaitable[None]],
) -> Callable[[], Awaitable[int]]:
    """Move the counted views into the database with ``record``; returns how many were moved.
    Counts whose ``record`` failed go back to Redis for the next flush: none is lost."""

    async def flush() -> int:
        moved = 0
        while counts := await pending.take():
            try:
                await record(counts)
            except Exception:
                await pending.give_back(counts)
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
