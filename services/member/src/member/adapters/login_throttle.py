"""Rate limiting of failed logins per email, counted in Redis so every replica shares the count."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis import ratelimit
from chassis.logging import get_logger
from chassis.problems import ServiceUnavailable

log = get_logger(__name__)


class RedisLoginThrottle:
    """After ``max_failures`` failures within ``window_seconds`` the email is locked until the
    window ends; a successful login clears the count."""

    def __init__(self, redis: Redis, *, max_failures: int, window_seconds: int) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window_seconds = window_seconds

    @staticmethod
    def key(email: str) -> str:
        return f"login-failures:{email.lower()}"

    async def retry_after(self, email: str) -> int | None:
        try:
            decision = await ratelimit.peek(self.redis, self.key(email), self.max_failures)
        except RedisError as exc:
            # Without the counter, logins cannot be protected: refuse rather than open the door.
            log.warning("login_throttle.unavailable", error=f"{type(exc).__name__}: {exc}")
            raise ServiceUnavailable("login is temporarily unavailable") from exc
        return None if decision.allowed else decision.retry_after

    async def record_failure(self, email: str) -> None:
        try:
            await ratelimit.hit(self.redis, self.key(email), self.max_failures, self.window_seconds)
        except RedisError as exc:
            raise ServiceUnavailable("login is temporarily unavailable") from exc

    async def reset(self, email: str) -> None:
        try:
            await ratelimit.reset(self.redis, self.key(email))
        except RedisError as exc:
            raise ServiceUnavailable("login is temporarily unavailable") from exc
