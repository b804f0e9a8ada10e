"""The deadline sweeper's timer: it sleeps until the next deadline (at most its cap) and wakes for a sooner one this process writes."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from chassis.db import utcnow
from saga.sweeper import DeadlineSweeper


class Sweeps:
    """A fake ``sweep``: records when it ran and answers the next deadline it is given."""

    def __init__(self, upcoming: dt.datetime | None = None, fail: int = 0) -> None:
        self.upcoming = upcoming
        self.fail = fail
        self.times: list[float] = []
        self.ran = asyncio.Event()

    async def __call__(self) -> tuple[int, dt.datetime | None]:
        self.times.append(asyncio.get_running_loop().time())
        self.ran.set()
        if self.fail:
            self.fail -= 1
            raise ConnectionRefusedError(111, "Connect call failed")
        return 0, self.upcoming

    async def next_run(self, timeout: float) -> float:
        """Wait for the next sweep; returns when it ran (loop time)."""
        self.ran.clear()
        await asyncio.wait_for(self.ran.wait(), timeout)
        return self.times[-1]


@asynccontextmanager
async def running(sweeper: DeadlineSweeper) -> AsyncIterator[None]:
    task = asyncio.create_task(sweeper.run())
    try:
        yield
    finally:
        await sweeper.stop()
        await asyncio.wait_for(task, 5)


async def test_with_no_deadline_ahead_it_sleeps_its_cap() -> None:
    sweeps = Sweeps(upcoming=None)
    async with running(DeadlineSweeper(sweeps, cap=0.5)):
        first = await sweeps.next_run(2)
        second = await sweeps.next_run(2)
    assert 0.45 <= second - first < 0.9


async def test_it_wakes_at_the_next_deadline_when_that_is_sooner_than_the_cap() -> None:
    sweeps = Sweeps()
    sweeps.upcoming = utcnow() + dt.timedelta(seconds=0.3)
    async with running(DeadlineSweeper(sweeps, cap=5.0)):
        first = await sweeps.next_run(2)
        sweeps.upcoming = None
        second = await sweeps.next_run(2)  # at the deadline, not after the 5 s cap
    assert second - first < 1.0


async def test_a_sooner_deadline_written_here_wakes_it_and_a_later_one_does_not() -> None:
    sweeps = Sweeps(upcoming=None)
    sweeper = DeadlineSweeper(sweeps, cap=5.0)
    async with running(sweeper):
        await sweeps.next_run(2)
        await asyncio.sleep(0.1)  # asleep until the cap now
        sweeper.deadline_written(utcnow() + dt.timedelta(seconds=30))  # later than the cap
        with pytest.raises(TimeoutError):
            await sweeps.next_run(0.5)
        sweeper.deadline_written(utcnow() + dt.timedelta(seconds=0.05))  # a short retry backoff
        await sweeps.next_run(1.0)


async def test_recovery_runs_first_and_a_failing_sweep_is_retried_after_a_backoff() -> None:
    order: list[str] = []
    sweeps = Sweeps(upcoming=None, fail=1)

    async def recover() -> None:
        order.append("recover")

    async def sweep() -> tuple[int, dt.datetime | None]:
        order.append("sweep")
        return await sweeps()

    async with running(DeadlineSweeper(sweep, cap=0.2, before_first=recover)):
        first = await sweeps.next_run(2)  # fails: the database is down
        second = await sweeps.next_run(2)
    assert order[:3] == ["recover", "sweep", "sweep"]
    assert second - first >= 0.19  # not at once: at least the cap


async def test_stop_ends_the_sleep_at_once() -> None:
    sweeps = Sweeps(upcoming=None)
    sweeper = DeadlineSweeper(sweeps, cap=30.0)
    task = asyncio.create_task(sweeper.run())
    await sweeps.next_run(2)
    await sweeper.stop()
    await asyncio.wait_for(task, 1.0)


async def test_with_no_deadline_at_all_it_sleeps_its_idle_cap_and_with_one_ahead_its_cap() -> None:
    """No saga in flight: one look per ``idle_cap`` (an idle worker is not woken every second);
    a deadline ahead (a saga in flight): back to one look per ``cap``."""
    sweeps = Sweeps(upcoming=None)
    async with running(DeadlineSweeper(sweeps, cap=0.2, idle_cap=1.0)):
        first = await sweeps.next_run(2)
        sweeps.upcoming = utcnow() + dt.timedelta(seconds=30)  # a saga starts meanwhile
        second = await sweeps.next_run(3)
        third = await sweeps.next_run(2)
    assert 0.95 <= second - first < 1.5
    assert 0.15 <= third - second < 0.6


async def test_a_deadline_written_here_wakes_an_idle_sweeper() -> None:
    sweeps = Sweeps(upcoming=None)
    sweeper = DeadlineSweeper(sweeps, cap=0.2, idle_cap=30.0)
    async with running(sweeper):
        await sweeps.next_run(2)
        await asyncio.sleep(0.1)
        sweeper.deadline_written(utcnow() + dt.timedelta(seconds=1))  # sooner than 30 s
        await sweeps.next_run(1.0)


def test_the_idle_cap_is_never_below_the_cap() -> None:
    async def sweep() -> tuple[int, dt.datetime | None]:
        return 0, None

    assert DeadlineSweeper(sweep, cap=1.0, idle_cap=0.5).idle_cap == 1.0
    assert DeadlineSweeper(sweep, cap=1.0).idle_cap == 1.0
