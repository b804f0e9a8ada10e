"""The fixed-window limiter against the real Redis: one atomic count-and-decide per event, release, and the per-process fallback."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from chassis import ratelimit
from chassis.redis import create_redis
from tests.support.infra import Infra
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:limit:"


async def test_simultaneous_hits_admit_exactly_the_limit(redis: Redis, prefix: str) -> None:
    """No check-then-act race on a limit: of 40 simultaneous events exactly 5 are allowed, each
    with a count of its own, and the window has a TTL."""
    decisions = await asyncio.gather(
        *(ratelimit.hit(redis, f"{prefix}k", 5, 60) for _ in range(40))
    )
    assert sorted(d.count for d in decisions) == list(range(1, 41))
    assert sum(d.allowed for d in decisions) == 5
    assert all(1 <= d.retry_after <= 60 for d in decisions)
    assert 0 < await redis.ttl(f"{prefix}k") <= 60


async def test_release_hands_back_one_and_never_makes_a_key_without_a_ttl(
    redis: Redis, prefix: str
) -> None:
    key = f"{prefix}k"
    await ratelimit.hit(redis, key, 2, 60)
    await ratelimit.hit(redis, key, 2, 60)
    await ratelimit.release(redis, key)
    assert await redis.get(key) == "1"
    assert 0 < await redis.ttl(key) <= 60
    for _ in range(3):
        await ratelimit.release(redis, key)
    assert await redis.get(key) == "0"
    await ratelimit.release(redis, f"{prefix}never-counted")
    assert await redis.exists(f"{prefix}never-counted") == 0


async def test_the_limiter_keeps_limiting_in_memory_while_redis_is_cut(
    infra: Infra, prefix: str
) -> None:
    """Redis cut by a TCP proxy (the shared server untouched): the fallback still admits
    exactly the limit of simultaneous events, per process."""
    target = urlsplit(infra.redis_url)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    client = create_redis(proxy.url(infra.redis_url))
    try:
        limiter = ratelimit.Limiter(client, service="test", operation="test", key_prefix=prefix)
        assert (await limiter.hit("k", 3, 60)).allowed  # counted in Redis
        await proxy.cut()
        decisions = await asyncio.gather(*(limiter.hit("k", 3, 60) for _ in range(20)))
        assert sum(d.allowed for d in decisions) == 3
        await limiter.reset("k")
        assert (await limiter.hit("k", 3, 60)).allowed
    finally:
        await client.aclose()
        await proxy.close()
