"""The edge's rate limit counted by one Lua script: still exact under concurrency, still a fixed window.

The count moved from a MULTI/EXEC transaction (INCR, EXPIRE NX, TTL) to one ``EVALSHA``; these
pin what the transaction guaranteed, against the real Redis.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from chassis import ratelimit
from chassis.problems import TooManyRequests
from gateway.ratelimit import RateLimiter

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:gateway:ratelimit:"


async def test_simultaneous_requests_are_admitted_exactly_up_to_the_limit(
    redis: Redis, prefix: str
) -> None:
    limiter = RateLimiter(redis, per_minute=7, key_prefix=prefix)
    outcomes = await asyncio.gather(
        *(limiter.check("user:u1") for _ in range(30)), return_exceptions=True
    )
    assert outcomes.count(None) == 7
    refused = [o for o in outcomes if o is not None]
    assert len(refused) == 23
    assert all(isinstance(o, TooManyRequests) for o in refused)
    assert await redis.get(f"{prefix}user:u1") == "30"


async def test_a_running_window_is_never_extended(redis: Redis, prefix: str) -> None:
    key = f"{prefix}k"
    first = await ratelimit.hit(redis, key, 5, 60)
    assert (first.count, first.retry_after) == (1, 60)
    await redis.expire(key, 20)  # the window is 40 s old
    second = await ratelimit.hit(redis, key, 5, 60)
    assert second.count == 2
    assert second.retry_after <= 20
    assert 0 < await redis.ttl(key) <= 20


async def test_a_counter_without_a_ttl_gets_a_window(redis: Redis, prefix: str) -> None:
    key = f"{prefix}k"
    await redis.set(key, 3)  # e.g. written by hand: it must not count forever
    decision = await ratelimit.hit(redis, key, 5, 60)
    assert (decision.count, decision.allowed, decision.retry_after) == (4, True, 60)
    assert 0 < await redis.ttl(key) <= 60
