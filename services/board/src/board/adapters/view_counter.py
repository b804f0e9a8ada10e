"""Write-behind counter: post views are counted in Redis and moved to PostgreSQL in batches.

A read of a post must not write to PostgreSQL, so the API only does ``INCR`` (and remembers
the post in a "dirty" set). The worker takes the counts with ``GETDEL``: the read and the reset
are one atomic step, so a view counted while the flush runs lands in a fresh key and is taken
by the next flush. No increment is lost between the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from redis.asyncio import Redis


class ViewCounter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self._dirty = f"{prefix}views:dirty"
        self._prefix = f"{prefix}views:"

    def _key(self, post_id: uuid.UUID) -> str:
        return f"{self._prefix}{post_id}"

    async def record(self, post_id: uuid.UUID) -> int:
        """Count one view; returns the views not yet flushed to the database."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._key(post_id))
            pipe.sadd(self._dirty, str(post_id))
            pending, _ = await pipe.execute()
        return int(pending)

    async def pending(self, post_id: uuid.UUID) -> int:
        value = await self.redis.get(self._key(post_id))
        return int(value or 0)

    async def take(self, limit: int = 500) -> dict[uuid.UUID, int]:
        """Take up to ``limit`` posts' pending counts, resetting them atomically."""
        members = await self.redis.spop(self._dirty, limit)
        ids: list[uuid.UUID] = []
        for member in members or []:
            try:
                ids.append(uuid.UUID(str(member)))
            except ValueError:
                continue  # not ours; nothing to flush
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id in ids:
                pipe.getdel(self._key(post_id))
            values = await pipe.execute()
        return {p: int(v) for p, v in zip(ids, values, strict=True) if v and int(v) > 0}

    async def give_back(self, counts: Mapping[uuid.UUID, int]) -> None:
        """Return counts whose flush failed, so the next flush retries them."""
        if not counts:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for post_id, count in counts.items():
                pipe.incrby(self._key(post_id), count)
                pipe.sadd(self._dirty, str(post_id))
            await pipe.execute()
