"""Open-loop load at a fixed rate, timed from each request's intended send time.

A closed-loop client (wrk, or N workers each waiting for its answer) sends less when the
system slows down, so a stall hides in a few slow samples: coordinated omission. Here request
``i`` is due at ``start + i / rate`` whatever happened before, and its latency runs from that
due time, so time spent queued behind a slow request counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


def schedule(rate: float, seconds: float) -> list[float]:
    """The due times (seconds after the start) of a run at ``rate`` per second for ``seconds``."""
    if rate <= 0 or seconds <= 0:
        return []
    return [i / rate for i in range(round(rate * seconds))]


@dataclass(frozen=True)
class Outcome:
    """One request: when it was due and when it finished (``time.time()`` seconds), whether it
    succeeded, and what the call returned (e.g. the id of what it created)."""

    due: float
    done: float
    ok: bool
    value: object = None

    @property
    def latency(self) -> float:
        return self.done - self.due


async def run_open_loop(
    rate: float, seconds: float, call: Callable[[int], Awaitable[object]]
) -> list[Outcome]:
    """Start ``call(i)`` at each due time of ``schedule(rate, seconds)`` without waiting for the
    earlier ones; an exception counts as a failed request. Returns the outcomes in send order."""
    start = time.time()
    due_times = [start + offset for offset in schedule(rate, seconds)]

    async def one(i: int, due: float) -> Outcome:
        try:
            value = await call(i)
        except Exception as exc:
            return Outcome(due, time.time(), False, repr(exc))
        return Outcome(due, time.time(), True, value)

    tasks: list[asyncio.Task[Outcome]] = []
    for i, due in enumerate(due_times):
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    return list(await asyncio.gather(*tasks))
