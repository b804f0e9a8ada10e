"""Deadline sweeper of the saga orchestrator: a timer that sleeps until the next saga deadline.

A ``chassis.lifecycle`` background service. After crash recovery (``before_first``, retried
until it succeeds) it applies every passed deadline (timeouts, delayed retries and re-sends,
``SagaEngine.sweep_until_next``) and then sleeps until the earliest deadline still ahead, but
never longer than ``cap`` seconds: a deadline written by another process (the saga api, another
worker replica) is not announced here, and the cap bounds how late it is seen. A deadline this
process writes sooner than the planned wake-up wakes the sweeper at once (``deadline_written``,
wired to ``SagaEngine.on_deadline``), so a short retry backoff is not overslept.

With no deadline at all (no saga in flight) it sleeps ``idle_cap`` instead: a deadline can then
only come from a saga start, whose first step's deadline lies a step timeout ahead (written by
the saga api or a worker), or from this process (announced). So an idle sweep interval no
longer than the step timeout makes no deadline late, and an idle worker looks once in
``idle_cap`` seconds instead of once a second. Short deadlines (retries, compensation retries)
are written while a saga is in flight, by the replica handling its reply, which sweeps them.

During a database outage the sweeper backs off like ``chassis.periodic.PeriodicTask`` (capped,
the outage logged once when it starts and once when it ends) and resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable

from chassis.db import utcnow
from chassis.logging import get_logger
from chassis.messaging.failures import Backoff, Outage

log = get_logger("saga.sweeper")

#: Longest pause between two tries while the database fails (seconds).
OUTAGE_BACKOFF_CAP = 10.0


class DeadlineSweeper:
    """Run ``sweep`` (returns how many deadlines it applied and the next one ahead, or None)
    whenever a deadline may be due; ``cap`` (seconds) is the longest sleep between two sweeps
    while any deadline exists, ``idle_cap`` (seconds, at least ``cap``; ``cap`` when None) the
    longest while none does. ``idle_cap`` must not exceed the step timeout (module docstring).
    """

    def __init__(
        self,
        sweep: Callable[[], Awaitable[tuple[int, dt.datetime | None]]],
        cap: float,
        *,
        idle_cap: float | None = None,
        before_first: Callable[[], Awaitable[object]] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        if cap <= 0:
            raise ValueError("the sweeper's cap must be positive")
        self.sweep = sweep
        self.cap = cap
        self.idle_cap = cap if idle_cap is None else max(cap, idle_cap)
        self.before_first = before_first
        self.clock = clock
        self.outage = Outage(
            "deadline sweeper", Backoff(initial=cap, cap=max(cap, OUTAGE_BACKOFF_CAP)), log
        )
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        #: When the sweeper plans to look next (UTC); None while it sweeps, so any deadline
        #: written meanwhile (possibly after its query) makes it look once more.
        self._next_look: dt.datetime | None = None

    def deadline_written(self, deadline: dt.datetime) -> None:
        """A commit of this process set ``deadline``: wake the sweeper if that is sooner than
        its next look."""
        if self._next_look is None or deadline < self._next_look:
            self._wake.set()

    async def run(self) -> None:
        while self.before_first is not None and not self._stopping.is_set():
            try:
                await self.before_first()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._sleep(max(self.cap, self.outage.failed(exc)))
            else:
                self.outage.succeeded()
                self.before_first = None
        while not self._stopping.is_set():
            self._next_look = None
            self._wake.clear()
            try:
                _, upcoming = await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = max(self.cap, self.outage.failed(exc))
            else:
                self.outage.succeeded()
                delay = self._delay(upcoming)
            self._next_look = self.clock() + dt.timedelta(seconds=delay)
            await self._sleep(delay)

    def _delay(self, upcoming: dt.datetime | None) -> float:
        """Seconds until ``upcoming`` (0 if passed), at most ``cap``; ``idle_cap`` if None."""
        if upcoming is None:
            return self.idle_cap
        return min(self.cap, max(0.0, (upcoming - self.clock()).total_seconds()))

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
