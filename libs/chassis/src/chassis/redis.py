"""Backing service attachment: one Redis client per process, created in the lifespan."""

from __future__ import annotations

from redis.asyncio import Redis

#: Seconds to connect and to wait for a reply. Redis is a dependency every process degrades
#: around (caches, counters, flags): an unreachable or silent Redis must fail fast, not hold a
#: request or a consumer.
CONNECT_TIMEOUT = 1.0
REPLY_TIMEOUT = 2.0


def create_redis(url: str) -> Redis:
    client: Redis = Redis.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=REPLY_TIMEOUT,
    )
    return client
