"""Periodic background task: a failing tick backs off (capped), is logged once per outage, and the loop resumes by itself."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from chassis.messaging.failures import Backoff
from chassis.periodic import PeriodicTask


class Flaky:
    """A tick that fails while ``down`` is set, like a loop whose database went away."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[float] = []

    async def __call__(self) -> None:
        self.calls.append(asyncio.get_running_loop().time())
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError(111, "Connect call failed")


async def run_until(task: PeriodicTask, done: asyncio.Event | None, seconds: float) -> None:
    runner = asyncio.create_task(task.run())
    try:
        if done is not None:
            await asyncio.wait_for(done.wait(), seconds)
        else:
            await asyncio.sleep(seconds)
    finally:
        await task.stop()
        await asyncio.wait_for(runner, 5)


async def test_a_failing_tick_backs_off_up_to_the_cap_and_the_loop_resumes() -> None:
    tick = Flaky(failures=4)
    task = PeriodicTask("sweeper", tick, 0.01, backoff=Backoff(initial=0.02, cap=0.08, jitter=0))
    with capture_logs() as logs:
        await run_until(task, None, 0.6)

    gaps = [b - a for a, b in zip(tick.calls, tick.calls[1:], strict=False)]
    # 0.02, 0.04, 0.08, 0.08 (capped) while failing, then the normal interval again
    assert gaps[:4] == pytest.approx([0.02, 0.04, 0.08, 0.08], abs=0.015)
    assert max(gaps[4:]) < 0.03
    events = [e["event"] for e in logs]
    assert events.count("outage.started") == 1  # once per outage, not once per try
    assert events.count("outage.ended") == 1
    assert not task.outage.active


async def test_recovery_before_the_first_tick_is_retried_until_it_succeeds() -> None:
    recover = Flaky(failures=2)
    ticks = 0
    ticked = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        ticked.set()

    task = PeriodicTask(
        "sweeper",
        tick,
        0.01,
        before_first=recover,
        backoff=Backoff(initial=0.01, cap=0.02, jitter=0),
    )
    await run_until(task, ticked, 5)
    assert len(recover.calls) == 3  # two failures, then the success; never again
    assert ticks >= 1


async def test_the_final_tick_runs_on_stop_and_its_failure_does_not_raise() -> None:
    calls = 0

    async def flush() -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionRefusedError(111, "down at shutdown")

    task = PeriodicTask("flush", flush, 60, run_on_stop=True)
    await run_until(task, None, 0.05)
    assert calls == 2
