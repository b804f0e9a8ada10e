"""Cache-aside with generation-stamped keys: each board's first page of posts, kept in Redis.

The API reads through the cache; only the worker invalidates it, after the projector or the
view-count flush has committed a change to a board's summaries. Invalidating bumps a per-board
generation counter instead of deleting keys, and the API reads the generation *before* it
queries PostgreSQL. A page computed from a state older than an invalidation is therefore stored
under the old generation, which no reader asks for again: a slow reader can never put a stale
page back. Entries expire after a TTL, which also bounds how long a missed invalidation (Redis
unreachable at that moment, or a crash between the commit and the bump) can show old data.

Each page is stored with the generation it was computed in, under a key without it, so a read
is one round trip: one ``MGET`` of the two generation counters and the page, and the page is
served only when its stamp is the current one. A page stored late under an older stamp only
replaces the entry with one no reader accepts (a miss), never with one it serves.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis.logging import get_logger
from chassis.metrics import DEGRADED_DEPENDENCY_FAILURES

log = get_logger(__name__)

#: Seconds an invalidation may wait for Redis before the change is left to the pages' TTL.
INVALIDATION_TIMEOUT_SECONDS = 0.5

#: Reads of a first page, by outcome: hit, miss, or error (Redis unreachable; served from
#: PostgreSQL). The hit ratio is ``hit / (hit + miss + error)``.
LOOKUPS = Counter(
    "board_first_page_cache_lookups_total",
    "First-page reads of a board's post list, by cache outcome",
    ["outcome"],
)


class FirstPageCache:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: float) -> None:
        self.redis = redis
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self._root = f"{prefix}first-page:"
        self._everything = f"{self._root}generation"

    def _generation_key(self, board_id: uuid.UUID) -> str:
        return f"{self._root}{board_id}:generation"

    def _page_key(self, board_id: uuid.UUID, size: int) -> str:
        return f"{self._root}{board_id}:page:{size}"

    @staticmethod
    def _stamp(everything: bytes | str | None, board: bytes | str | None) -> str:
        return f"{int(everything or 0)}.{int(board or 0)}"

    async def stamp(self, board_id: uuid.UUID) -> str:
        """The board's current generation; read it before querying the database."""
        everything, board = await self.redis.mget(self._everything, self._generation_key(board_id))
        return self._stamp(everything, board)

    async def get(self, board_id: uuid.UUID, size: int) -> tuple[str, str | None]:
        """The current stamp, and the page stored under it (None on a miss): one round trip."""
        everything, board, entry = await self.redis.mget(
            self._everything, self._generation_key(board_id), self._page_key(board_id, size)
        )
        stamp = self._stamp(everything, board)
        if entry is None:
            return stamp, None
        stored, _, page = (entry.decode() if isinstance(entry, bytes) else entry).partition("\n")
        return stamp, page if stored == stamp else None

    async def put(self, board_id: uuid.UUID, stamp: str, size: int, page: str) -> None:
        """Store a page computed after ``stamp`` was read, with that stamp."""
        await self.redis.set(self._page_key(board_id, size), f"{stamp}\n{page}", px=self.ttl_ms)

    async def invalidate(self, board_ids: Iterable[uuid.UUID]) -> None:
        """The boards' lists changed: every page stored so far is no longer read."""
        keys = sorted({self._generation_key(b) for b in board_ids})
        if not keys:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(key)
            await pipe.execute()

    async def invalidate_committed(self, board_ids: Iterable[uuid.UUID] | None) -> None:
        """Invalidate the boards (every board for None) after a change that is already
        committed: when Redis is unreachable the stale pages are left to their TTL (the change
        itself stands), and the caller goes on."""
        boards = None if board_ids is None else list(board_ids)
        try:
            # bounded: a Redis that does not answer must not hold the projector for the
            # client's whole reply timeout on every event
            async with asyncio.timeout(INVALIDATION_TIMEOUT_SECONDS):
                await (self.invalidate_all() if boards is None else self.invalidate(boards))
        except (RedisError, OSError, TimeoutError) as exc:
            DEGRADED_DEPENDENCY_FAILURES.labels("board", "redis", "first_page_invalidation").inc()
            log.warning(
                "first_page_cache.invalidation_failed",
                boards="all" if boards is None else [str(b) for b in boards],
                ttl_seconds=self.ttl_ms / 1000,
                error=f"{type(exc).__name__}: {exc}",
            )

    async def invalidate_all(self) -> None:
        """Every board's list changed (a rebuilt read model was swapped in)."""
        await self.redis.incr(self._everything)
