"""Rate limiting at the edge: requests per minute per user, or per client IP without a valid token.

The counters live in Redis (``chassis.ratelimit``, a fixed window), so every gateway replica
shares them. When Redis cannot be reached the request is let through and counted in
``gateway_rate_limit_errors_total``: the limiter protects the services, it must not become the
reason they are unreachable (readiness reports the Redis outage).
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis import ratelimit
from chassis.auth import Principal
from chassis.logging import get_logger
from chassis.metrics import DEGRADED_DEPENDENCY_FAILURES
from chassis.problems import TooManyRequests
from gateway.metrics import RATE_LIMIT_ERRORS, RATE_LIMITED

log = get_logger(__name__)

WINDOW_SECONDS = 60


def client_key(principal: Principal | None, client_ip: str) -> str:
    """The identity a limit applies to: the verified user, else the client address."""
    if principal is not None:
        return f"user:{principal.id}"
    return f"ip:{client_ip}"


class RateLimiter:
    def __init__(
        self, redis: Redis, *, per_minute: int, key_prefix: str, timeout: float = 0.5
    ) -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.key_prefix = key_prefix
        self.timeout = timeout  # a slow Redis must not hold every request

    async def check(self, key: str) -> None:
        """Count one request for ``key``; 429 with ``Retry-After`` once the limit is passed."""
        if self.per_minute <= 0:
            return
        try:
            async with asyncio.timeout(self.timeout):
                decision = await ratelimit.hit(
                    self.redis, self.key_prefix + key, self.per_minute, WINDOW_SECONDS
                )
        except (RedisError, OSError, TimeoutError) as exc:
            RATE_LIMIT_ERRORS.inc()
            DEGRADED_DEPENDENCY_FAILURES.labels("gateway", "redis", "rate_limit").inc()
            log.warning("ratelimit.unavailable", error=f"{type(exc).__name__}: {exc}")
            return
        if not decision.allowed:
            RATE_LIMITED.labels(key.partition(":")[0]).inc()
            raise TooManyRequests(
                f"more than {self.per_minute} requests per minute", decision.retry_after
            )
