"""Session records on Redis (the BFF's server-side session store): one hash per session, a lock per refresh, every call bounded.

Redis is a dependency web degrades around (docs/CONVENTIONS.md "Degraded dependencies"): every
call here is bounded by ``timeout`` (0.5 s) and any failure (refused, reset, slow, a Redis error)
becomes ``RecordsUnavailable``, logged and counted in
``degraded_dependency_failures_total{service="web",dependency="redis",operation=<op>}``. What a
page does then (guests read on, writes are refused) is decided above, in ``web.sessions``.

Keys, under ``WEB_REDIS_KEY_PREFIX`` (default ``web:``); ``{h}`` is the SHA-256 of the session
cookie, so a dump of Redis holds no cookie a browser could present:

- ``{prefix}session:{h}``: HASH of text fields (``web.sessions.Session``), with a TTL;
- ``{prefix}refresh-lock:{h}``: the holder's random token, ``SET NX PX``, released only by it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis.logging import get_logger
from chassis.metrics import DEGRADED_DEPENDENCY_FAILURES

log = get_logger(__name__)

T = TypeVar("T")

#: Seconds one Redis call may take before the page goes on without it.
DEFAULT_TIMEOUT = 0.5

# Write the new token pair only if the refresh token is still the one the refresh used: a
# second writer (another replica that refreshed too) must not overwrite a newer pair with an
# older one. ARGV: expected refresh token, then field/value pairs.
_SWAP_TOKENS = """
if redis.call('HGET', KEYS[1], 'refresh_token') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
# Release a lock only if this holder still has it (it may have expired and been taken since).
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Read a field and delete it in one step: a one-shot message is shown once, by one request.
_TAKE_FIELD = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then redis.call('HDEL', KEYS[1], ARGV[1]) end
return value
"""
# Set fields of a hash that still exists (a deleted session must not come back half-written).
_UPDATE_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


class RecordsUnavailable(Exception):
    """Redis did not answer in time or refused the call: the session store is down for now."""


class SessionRecords(Protocol):
    """The storage port of ``web.sessions.SessionStore``; ``h`` is a session's key (a hash).
    Every method raises ``RecordsUnavailable`` when the store cannot be reached."""

    async def load(self, h: str) -> dict[str, str] | None:
        """The session's fields, or None when there is none (expired, deleted, never made)."""
        ...

    async def save(self, h: str, fields: Mapping[str, str], ttl_seconds: int) -> None:
        """Write a new session (replacing any with the key) that expires after ``ttl_seconds``."""
        ...

    async def update(self, h: str, fields: Mapping[str, str]) -> bool:
        """Set fields of an existing session; False when it no longer exists."""
        ...

    async def expire(self, h: str, ttl_seconds: int) -> None:
        """Let the session live ``ttl_seconds`` from now."""
        ...

    async def delete(self, h: str) -> None: ...

    async def swap_tokens(self, h: str, expected_refresh: str, fields: Mapping[str, str]) -> bool:
        """Compare-and-set: write ``fields`` only while ``refresh_token`` is ``expected_refresh``."""
        ...

    async def take(self, h: str, field: str) -> str | None:
        """Read and delete one field atomically (a one-shot message)."""
        ...

    async def lock(self, h: str, holder: str, ttl_ms: int) -> bool:
        """Take the session's refresh lock for ``ttl_ms`` unless someone has it."""
        ...

    async def unlock(self, h: str, holder: str) -> None:
        """Release the refresh lock if ``holder`` still has it."""
        ...

    async def ping(self) -> None: ...


class RedisSessionRecords:
    """``SessionRecords`` on Redis (see the module docstring for keys and failure handling)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "web:",
        service: str = "web",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.service = service
        self.timeout = timeout

    def session_key(self, h: str) -> str:
        return f"{self.prefix}session:{h}"

    def lock_key(self, h: str) -> str:
        return f"{self.prefix}refresh-lock:{h}"

    async def _bounded(self, operation: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            DEGRADED_DEPENDENCY_FAILURES.labels(self.service, "redis", operation).inc()
            log.warning(
                "sessions.redis_unavailable",
                operation=operation,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            raise RecordsUnavailable(operation) from exc

    async def load(self, h: str) -> dict[str, str] | None:
        found: dict[str, str] = await self._bounded(
            "session_load",
            self.redis.hgetall(self.session_key(h)),  # type: ignore[arg-type]
        )
        return found or None

    async def save(self, h: str, fields: Mapping[str, str], ttl_seconds: int) -> None:
        key = self.session_key(h)

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=dict(fields))  # type: ignore[arg-type]
                pipe.expire(key, ttl_seconds)
                await pipe.execute()

        await self._bounded("session_save", write())

    async def update(self, h: str, fields: Mapping[str, str]) -> bool:
        args = [item for pair in fields.items() for item in pair]
        done = await self._bounded(
            "session_update",
            self.redis.eval(_UPDATE_EXISTING, 1, self.session_key(h), *args),
        )
        return bool(done)

    async def expire(self, h: str, ttl_seconds: int) -> None:
        await self._bounded("session_touch", self.redis.expire(self.session_key(h), ttl_seconds))

    async def delete(self, h: str) -> None:
        await self._bounded("session_delete", self.redis.delete(self.session_key(h)))

    async def swap_tokens(self, h: str, expected_refresh: str, fields: Mapping[str, str]) -> bool:
        args = [item for pair in fields.items() for item in pair]
        done = await self._bounded(
            "session_swap_tokens",
            self.redis.eval(_SWAP_TOKENS, 1, self.session_key(h), expected_refresh, *args),
        )
        return bool(done)

    async def take(self, h: str, field: str) -> str | None:
        value = await self._bounded(
            "session_take",
            self.redis.eval(_TAKE_FIELD, 1, self.session_key(h), field),
        )
        return None if value is None else str(value)

    async def lock(self, h: str, holder: str, ttl_ms: int) -> bool:
        taken = await self._bounded(
            "refresh_lock", self.redis.set(self.lock_key(h), holder, nx=True, px=ttl_ms)
        )
        return bool(taken)

    async def unlock(self, h: str, holder: str) -> None:
        await self._bounded(
            "refresh_unlock",
            self.redis.eval(_RELEASE_LOCK, 1, self.lock_key(h), holder),
        )

    async def ping(self) -> None:
        await self._bounded("ping", self.redis.ping())
