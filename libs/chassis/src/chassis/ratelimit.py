"""Rate limiting: a fixed-window counter in Redis, shared by every replica."""

from __future__ import annotations

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
