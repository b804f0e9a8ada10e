"""Rate limiting: a fixed-window counter in Redis, shared by every replica, with an in-memory fallback.

Every decision is one atomic count-and-compare (``hit``): an event is counted *before* the work
it limits, and the work runs only if the count stayed within the limit. Reading the count first
and writing it after the work is a check-then-act race on a limit: N concurrent requests all
read the same old count and all pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from chassis.logging import get_logger
from chassis.metrics import DEGRADED_DEPENDENCY_FAILURES

log = get_logger(__name__)

#: Redis errors a limiter degrades around (a refused or dropped connection, a slow reply).
UNAVAILABLE = (RedisError, OSError, TimeoutError)

# Count one event and start its window if none is running (a key without a TTL gets one, like
# EXPIRE NX): one atomic command, so concurrent callers each get a distinct count. Returns
# {count, seconds left in the window}.
_HIT = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""
_HIT_SHA = hashlib.sha1(_HIT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

# Hand one counted event back, never below zero, and never bring back an expired window.
_RELEASE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class RateDecision:
    """``allowed`` when ``count`` (this event included) is within the limit; ``retry_after`` is
    the whole seconds (≥ 1) until the window ends, for the ``Retry-After`` header."""

    allowed: bool
    count: int
    retry_after: int


async def hit(redis: Redis, key: str, limit: int, window_seconds: int) -> RateDecision:
    """Count one event under ``key``; refuse once ``limit`` is passed inside the window.

    INCR and EXPIRE run in one Lua script, atomic like a MULTI/EXEC transaction, so concurrent
    callers each get a distinct count: with ``limit`` N, exactly N of any number of simultaneous
    callers are allowed. One ``EVALSHA`` instead of a five-command transaction costs the caller
    about half the CPU (a gateway pays it on every request); the script is sent once per Redis
    server (``NOSCRIPT`` after a restart sends it again)."""
    try:
        count, ttl = await redis.evalsha(_HIT_SHA, 1, key, window_seconds)
    except NoScriptError:
        count, ttl = await redis.eval(_HIT, 1, key, window_seconds)
    retry_after = int(ttl) if ttl and int(ttl) > 0 else window_seconds
    return RateDecision(int(count) <= limit, int(count), retry_after)


async def release(redis: Redis, key: str) -> None:
    """Hand back one event counted by ``hit`` whose work never ran (atomic, never below 0)."""
    await redis.eval(_RELEASE, 1, key)


async def reset(redis: Redis, key: str) -> None:
    await redis.delete(key)


class LocalWindow:
    """The same fixed-window counter in this process's memory: the fallback while Redis is down.

    Counts are per replica, so a limit of N admits up to N per replica during an outage: weaker
    than the shared count, but never no limit and never a refusal of every client. ``hit`` does
    not await, so within one process it is as atomic as the Redis transaction. At most
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

    def count(self, key: str) -> int:
        """The events counted for ``key`` in its current window (for inspection: deciding on it
        and counting after the work would be the check-then-act race ``hit`` avoids)."""
        entry = self._current(key)
        return entry[0] if entry else 0

    def release(self, key: str) -> None:
        entry = self._current(key)
        if entry is not None and entry[0] > 0:
            self._windows[key] = (entry[0] - 1, entry[1])

    def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, ends) in self._windows.items() if ends <= now]:
            del self._windows[key]
        while len(self._windows) >= self.max_keys:
            del self._windows[min(self._windows, key=lambda k: self._windows[k][1])]


class Limiter:
    """Fixed-window limits counted in Redis under ``key_prefix``, in this process's memory
    (``LocalWindow``) while Redis cannot answer within ``timeout`` seconds.

    Redis is a dependency the process degrades around (docs/CONVENTIONS.md "Degraded dependencies"):
    during an outage every key is still limited, per replica, instead of refusing every client or
    dropping the limit. Each bypassed call is logged and counted in
    ``degraded_dependency_failures_total{dependency="redis",operation=<operation>}``, and
    ``on_degraded`` (when given) is called once for each, for a caller's own counter."""

    def __init__(
        self,
        redis: Redis,
        *,
        service: str,
        operation: str,
        key_prefix: str = "",
        timeout: float = 0.5,
        on_degraded: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        self.service = service
        self.operation = operation
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.on_degraded = on_degraded  # a caller's own counter, e.g. the gateway's
        self.local = LocalWindow()

    def _degraded(self, exc: BaseException) -> None:
        DEGRADED_DEPENDENCY_FAILURES.labels(self.service, "redis", self.operation).inc()
        if self.on_degraded is not None:
            self.on_degraded()
        log.warning(
            "ratelimit.redis_unavailable",
            operation=self.operation,
            error=f"{type(exc).__name__}: {exc}"[:300],
        )

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        """Count one event for ``key`` (atomically, see ``hit``) and say whether it is allowed."""
        key = self.key_prefix + key
        try:
            async with asyncio.timeout(self.timeout):
                return await hit(self.redis, key, limit, window_seconds)
        except UNAVAILABLE as exc:
            self._degraded(exc)
            return self.local.hit(key, limit, window_seconds)

    async def release(self, key: str) -> None:
        """Hand back one event whose work never ran."""
        key = self.key_prefix + key
        try:
            async with asyncio.timeout(self.timeout):
                await release(self.redis, key)
        except UNAVAILABLE as exc:
            self._degraded(exc)
            self.local.release(key)

    async def reset(self, key: str) -> None:
        """Forget every event of ``key`` (in Redis and in this process's fallback)."""
        key = self.key_prefix + key
        self.local.reset(key)
        try:
            async with asyncio.timeout(self.timeout):
                await reset(self.redis, key)
        except UNAVAILABLE as exc:
            self._degraded(exc)
