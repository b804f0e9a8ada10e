"""The edge rate limiter against the real Redis: shared counts, 429 with Retry-After, a per-replica limit while Redis is down."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from chassis.auth import Principal
from chassis.problems import TooManyRequests
from gateway.ratelimit import RateLimiter, client_key
from tests.support.infra import Infra
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:ratelimit:"


async def test_the_limit_is_counted_per_key_and_answered_with_retry_after(
    redis: Redis, prefix: str
) -> None:
    limiter = RateLimiter(redis, per_minute=3, key_prefix=prefix)
    for _ in range(3):
        await limiter.check("user:a")
    with pytest.raises(TooManyRequests) as refused:
        await limiter.check("user:a")
    assert refused.value.status == 429
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    await limiter.check("user:b")  # another caller has a count of its own
    assert await redis.get(f"{prefix}user:a") == "4"
    assert 0 < await redis.ttl(f"{prefix}user:a") <= 60


async def test_two_limiters_on_one_redis_share_the_counts(
    redis: Redis, infra: Infra, prefix: str
) -> None:
    other: Redis = Redis.from_url(infra.redis_url, decode_responses=True)
    try:
        first = RateLimiter(redis, per_minute=2, key_prefix=prefix)
        second = RateLimiter(other, per_minute=2, key_prefix=prefix)
        await first.check("ip:192.0.2.1")
        await second.check("ip:192.0.2.1")
        with pytest.raises(TooManyRequests):
            await first.check("ip:192.0.2.1")
    finally:
        await other.aclose()


async def test_zero_disables_the_limit(redis: Redis, prefix: str) -> None:
    limiter = RateLimiter(redis, per_minute=0, key_prefix=prefix)
    for _ in range(5):
        await limiter.check("user:a")
    assert await redis.exists(f"{prefix}user:a") == 0


async def test_without_redis_the_limit_is_still_counted_in_this_replica() -> None:
    # A real client pointed at a port where nothing listens. Failing open would let a flood
    # through for as long as Redis is down; the limit must hold, counted in memory.
    unreachable: Redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    errors = REGISTRY.get_sample_value("gateway_rate_limit_errors_total") or 0.0
    try:
        limiter = RateLimiter(unreachable, per_minute=2, key_prefix="test:")
        await limiter.check("user:a")
        await limiter.check("user:a")
        with pytest.raises(TooManyRequests) as refused:
            await limiter.check("user:a")
        assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
        await limiter.check("user:b")  # every other caller keeps a count of its own
    finally:
        await unreachable.aclose()
    assert REGISTRY.get_sample_value("gateway_rate_limit_errors_total") == errors + 4


async def test_the_shared_count_comes_back_with_redis(redis: Redis, prefix: str) -> None:
    # The per-replica window is only a fallback: once Redis answers, Redis decides again.
    limiter = RateLimiter(redis, per_minute=1, key_prefix=prefix)
    limiter.limiter.local.hit(f"{prefix}user:a", 1, 60)  # counted during an earlier outage
    await limiter.check("user:a")  # Redis's count is 1: allowed
    with pytest.raises(TooManyRequests):
        await limiter.check("user:a")


def test_the_key_is_the_user_when_known_else_the_address() -> None:
    who = Principal(uuid.UUID(int=7), "USER")
    assert client_key(who, "192.0.2.1") == f"user:{who.id}"
    assert client_key(None, "192.0.2.1") == "ip:192.0.2.1"
