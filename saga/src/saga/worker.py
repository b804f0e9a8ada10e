"""Worker loops of the orchestrator: the deadline sweeper (after crash recovery) and the in-flight gauge.

The reply consumer and the outbox relay come from the chassis (see bootstrap.build_worker).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from chassis.logging import get_logger

log = get_logger("saga.worker")


class PeriodicTask:
    """A background loop calling ``tick`` every ``interval`` seconds until stopped; an error in one
    tick is logged and the loop goes on. ``before_first`` runs once, before the first tick."""

    def __init__(
        self,
        name: str,
        tick: Callable[[], Awaitable[object]],
        interval: float,
        *,
        before_first: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.name = name
        self.tick = tick
        self.interval = interval
        self.before_first = before_first
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        if self.before_first is not None:
            await self.before_first()  # a failure here restarts the loop (Runtime supervises it)
            self.before_first = None
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("saga.loop_failed", loop=self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def stop(self) -> None:
        self._stopping.set()


async def wait_for_assignment(assigned: asyncio.Event, timeout: float) -> None:
    """Recovery waits until the reply consumer owns its partitions, so replies that queued up
    while the orchestrator was down are read before any deadline is judged."""
    try:
        await asyncio.wait_for(assigned.wait(), timeout)
    except TimeoutError:
        log.warning("saga.recovery_without_assignment", waited_seconds=timeout)
