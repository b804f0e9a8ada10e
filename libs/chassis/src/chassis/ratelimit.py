"""Rate limiting: a fixed-window counter in Redis, shared by every replica, with an in-memory fallback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    count: int
    retry_after: int


async def hit(redis: Redis, key: str, limit: int, window_seconds: int) -> RateDecision:
    """Count one event under ``key``; refuse once ``limit`` is passed inside the window."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, window_seconds, nx=True)
        pipe.ttl(key)
        count, _, ttl = await pipe.execute()
    retry_after = int(ttl) if ttl and int(ttl) > 0 else window_seconds
    return RateDecision(int(count) <= limit, int(count), retry_after)


async def peek(redis: Redis, key: str, limit: int) -> RateDecision:
    """Look without counting: is ``key`` already over ``limit``?"""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(key)
        pipe.ttl(key)
        raw, ttl = await pipe.execute()
    count = int(raw or 0)
    return RateDecision(count < limit, count, int(ttl) if ttl and int(ttl) > 0 else 1)


async def reset(redis: Redis, key: str) -> None:
    await redis.delete(key)


class LocalWindow:
    """The same fixed-window counter in this process's memory: the fallback while Redis is down.

    Counts are per replica, so a limit of N admits up to N per replica during an outage: weaker
    than the shared count, but never no limit and never a refusal of every client. At most
    ``max_keys`` keys are kept (expired ones first, then the oldest window goes), so a flood of
    distinct keys cannot grow the process. ``clock`` returns seconds (monotonic)."""

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.max_keys = max_keys
        self.clock = clock
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (count, window end)

    def _current(self, key: str) -> tuple[int, float] | None:
        entry = self._windows.get(key)
        if entry is not None and entry[1] <= self.clock():
            del self._windows[key]
            return None
        return entry

    def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        entry = self._current(key)
        now = self.clock()
        count, ends = (entry[0] + 1, entry[1]) if entry else (1, now + window_seconds)
        if entry is None and len(self._windows) >= self.max_keys:
            self._evict(now)
        self._windows[key] = (count, ends)
        return RateDecision(count <= limit, count, max(1, math.ceil(ends - now)))

    def peek(self, key: str, limit: int) -> RateDecision:
        entry = self._current(key)
        if entry is None:
            return RateDecision(True, 0, 1)
        return RateDecision(entry[0] < limit, entry[0], max(1, math.ceil(entry[1] - self.clock())))

    def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, ends) in self._windows.items() if ends <= now]:
            del self._windows[key]
        while len(self._windows) >= self.max_keys:
            del self._windows[min(self._windows, key=lambda k: self._windows[k][1])]
