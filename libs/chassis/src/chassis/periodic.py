"""Periodic background task: a worker loop that backs off during an outage and resumes by itself.

A ``chassis.lifecycle`` background service calling ``tick`` every ``interval`` seconds. When a
tick fails (a database or broker outage, or a bug) the loop neither dies nor spins: the next tick
waits ``max(interval, backoff)``, the backoff doubling up to its cap, and the outage is logged
once when it starts and once when it ends (``chassis.messaging.failures.Outage``), not per try.
No process needs a restart to recover (docs/CONVENTIONS.md "Failures of consumers").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from chassis.logging import get_logger
from chassis.messaging.failures import Backoff, Outage

log = get_logger("chassis.periodic")

#: Longest pause between two tries of a failing tick (seconds).
DEFAULT_BACKOFF_CAP = 10.0


class PeriodicTask:
    """Call ``tick`` every ``interval`` seconds until stopped.

    ``before_first`` runs once before the first tick, retried with the same backoff until it
    succeeds (e.g. the saga orchestrator's crash recovery). ``run_on_stop`` ticks once more on the
    way out (e.g. a flush, so nothing waits for the next start); its failure is logged.
    """

    def __init__(
        self,
        name: str,
        tick: Callable[[], Awaitable[object]],
        interval: float,
        *,
        before_first: Callable[[], Awaitable[object]] | None = None,
        run_on_stop: bool = False,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self.tick = tick
        self.interval = interval
        self.before_first = before_first
        self.run_on_stop = run_on_stop
        self.outage = Outage(
            name, backoff or Backoff(initial=interval, cap=max(interval, DEFAULT_BACKOFF_CAP)), log
        )
        self._stopping = asyncio.Event()

    async def _try(self, action: Callable[[], Awaitable[object]]) -> tuple[bool, float]:
        """Run ``action``; returns whether it succeeded and how long to wait (seconds)."""
        try:
            await action()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return False, max(self.interval, self.outage.failed(exc))
        self.outage.succeeded()
        return True, self.interval

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        while self.before_first is not None and not self._stopping.is_set():
            done, delay = await self._try(self.before_first)
            if done:
                self.before_first = None
            else:
                await self._pause(delay)
        while not self._stopping.is_set():
            _, delay = await self._try(self.tick)
            await self._pause(delay)
        if self.run_on_stop:
            try:
                await self.tick()
            except Exception:
                log.exception("periodic.final_tick_failed", task=self.name)

    async def stop(self) -> None:
        self._stopping.set()
