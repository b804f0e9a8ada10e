"""Rate limiting of failed logins per email: counted in Redis so every replica shares the count, per replica while Redis is down.

Redis is a dependency the process degrades around (DESIGN.md §4, "Every process"): while it
cannot answer, the count falls back to this replica's memory (``chassis.ratelimit.LocalWindow``),
so logins stay available to every client and each email is still limited, per replica, instead
of either refusing everybody or dropping the limit. Each bypassed call is logged and counted in
``degraded_dependency_failures_total{dependency="redis",operation="login_throttle"}``.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis import ratelimit
from chassis.logging import get_logger
from chassis.metrics import DEGRADED_DEPENDENCY_FAILURES
from member.domain.identity import canonical

log = get_logger(__name__)

#: Redis errors the throttle degrades around (a refused or dropped connection, a slow reply).
UNAVAILABLE = (RedisError, OSError, TimeoutError)


class RedisLoginThrottle:
    """After ``max_failures`` failures within ``window_seconds`` the email is locked until the
    window ends; a successful login clears the count. ``timeout`` (seconds) bounds each Redis call
    before the local fallback answers."""

    def __init__(
        self,
        redis: Redis,
        *,
        max_failures: int,
        window_seconds: int,
        service: str = "member",
        timeout: float = 0.5,
    ) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.service = service
        self.timeout = timeout
        self.local = ratelimit.LocalWindow()

    @staticmethod
    def key(email: str) -> str:
        """One counter per text identity of the email (``identity.canonical``), so another
        case or normalization form of the same address cannot start a fresh count."""
        return f"login-failures:{canonical(email)}"

    def _degraded(self, exc: BaseException) -> None:
        DEGRADED_DEPENDENCY_FAILURES.labels(self.service, "redis", "login_throttle").inc()
        log.warning("login_throttle.redis_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])

    async def retry_after(self, email: str) -> int | None:
        key = self.key(email)
        try:
            async with asyncio.timeout(self.timeout):
                decision = await ratelimit.peek(self.redis, key, self.max_failures)
        except UNAVAILABLE as exc:
            self._degraded(exc)
            decision = self.local.peek(key, self.max_failures)
        return None if decision.allowed else decision.retry_after

    async def record_failure(self, email: str) -> None:
        key = self.key(email)
        try:
            async with asyncio.timeout(self.timeout):
                await ratelimit.hit(self.redis, key, self.max_failures, self.window_seconds)
        except UNAVAILABLE as exc:
            self._degraded(exc)
            self.local.hit(key, self.max_failures, self.window_seconds)

    async def reset(self, email: str) -> None:
        key = self.key(email)
        self.local.reset(key)
        try:
            async with asyncio.timeout(self.timeout):
                await ratelimit.reset(self.redis, key)
        except UNAVAILABLE as exc:
            self._degraded(exc)
