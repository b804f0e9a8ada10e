"""Backing service attachment: one Redis client per process, created in the lifespan."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    client: Redis = Redis.from_url(url, decode_responses=True, health_check_interval=30)
    return client
