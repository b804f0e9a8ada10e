"""Rate limiting at the edge: requests per minute per user, or per client IP without a valid token.

The counters live in Redis (``chassis.ratelimit.Limiter``, a fixed window), so every gateway
replica shares them. When Redis cannot answer within 0.5 s the count moves to this replica's
memory (``chassis.ratelimit.LocalWindow``) until it answers again: a limit of N then admits up to
N per replica, which is weaker than the shared count but is still a limit. Failing open would
hand a flood the services whenever Redis is down, and failing closed would refuse every client
for an outage of a cache. Each such call is logged and counted in
``gateway_rate_limit_errors_total`` and ``degraded_dependency_failures_total``; readiness
reports the outage as a detail, not as a 503 (docs/CONVENTIONS.md "Degraded dependencies").
"""

from __future__ import annotations

from redis.asyncio import Redis

from chassis.auth import Principal
from chassis.problems import TooManyRequests
from chassis.ratelimit import Limiter
from gateway.metrics import RATE_LIMIT_ERRORS, RATE_LIMITED

WINDOW_SECONDS = 60


def client_key(principal: Principal | None, client_ip: str) -> str:
    """The identity a limit applies to: the verified user, else the client address."""
    if principal is not None:
        return f"user:{principal.id}"
    return f"ip:{client_ip}"


class RateLimiter:
    """``per_minute`` requests per key (≤ 0: no limit), counted under ``key_prefix``; a Redis
    call waits at most ``timeout`` seconds before the per-replica fallback answers."""

    def __init__(
        self, redis: Redis, *, per_minute: int, key_prefix: str, timeout: float = 0.5
    ) -> None:
        self.per_minute = per_minute
        self.limiter = Limiter(
            redis,
            service="gateway",
            operation="rate_limit",
            key_prefix=key_prefix,
            timeout=timeout,
            on_degraded=RATE_LIMIT_ERRORS.inc,
        )

    async def check(self, key: str) -> None:
        """Count one request for ``key``; 429 with ``Retry-After`` once the limit is passed."""
        if self.per_minute <= 0:
            return
        decision = await self.limiter.hit(key, self.per_minute, WINDOW_SECONDS)
        if not decision.allowed:
            RATE_LIMITED.labels(key.partition(":")[0]).inc()
            raise TooManyRequests(
                f"more than {self.per_minute} requests per minute", decision.retry_after
            )
