"""Write-behind view counts: the flush moves every pending view once, and gives back what it could not store."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping

import pytest

from board.entrypoints.background import view_count_flush


class FakePendingViews:
    """An in-memory stand-in for the Redis counter, handing out counts in small batches."""

    def __init__(self, counts: Mapping[uuid.UUID, int], batch: int = 2) -> None:
        self.counts: Counter[uuid.UUID] = Counter(counts)
        self.batch = batch

    async def take(self, limit: int = 500) -> dict[uuid.UUID, int]:
        taken = dict(list(self.counts.items())[: min(limit, self.batch)])
        for post_id in taken:
            del self.counts[post_id]
        return taken

    async def give_back(self, counts: Mapping[uuid.UUID, int]) -> None:
        self.counts.update(counts)


class Store:
    """Records the flushed counts; fails on demand like a database that went away."""

    def __init__(self, fail: bool = False) -> None:
        self.views: Counter[uuid.UUID] = Counter()
        self.fail = fail

    async def record(self, counts: Mapping[uuid.UUID, int]) -> None:
        if self.fail:
            raise ConnectionError("database unavailable")
        self.views.update(counts)


async def test_a_flush_moves_every_pending_view_once() -> None:
    pending = FakePendingViews({uuid.uuid4(): n for n in range(1, 6)})
    expected = Counter(pending.counts)
    store = Store()
    flush = view_count_flush(pending, store.record)

    assert await flush() == 15
    assert store.views == expected
    assert not pending.counts
    assert await flush() == 0


async def test_counts_a_failed_flush_could_not_store_go_back_for_the_next_one() -> None:
    post_id = uuid.uuid4()
    pending = FakePendingViews({post_id: 3})
    store = Store(fail=True)
    flush = view_count_flush(pending, store.record)

    with pytest.raises(ConnectionError):
        await flush()
    assert pending.counts == Counter({post_id: 3})

    store.fail = False
    assert await flush() == 3
    assert store.views == Counter({post_id: 3})


async def test_counts_neither_the_database_nor_redis_could_take_wait_in_the_process() -> None:
    post_id = uuid.uuid4()
    pending = FakePendingViews({post_id: 4})
    store = Store(fail=True)
    flush = view_count_flush(pending, store.record)
    redis_down = False

    async def give_back(counts: Mapping[uuid.UUID, int]) -> None:
        if redis_down:
            raise ConnectionError("redis unavailable")
        pending.counts.update(counts)

    pending.give_back = give_back  # type: ignore[method-assign]
    redis_down = True
    with pytest.raises(ConnectionError):
        await flush()
    assert not pending.counts  # Redis could not take them back ...

    store.fail = False
    redis_down = False
    pending.counts[post_id] += 1  # ... and a view counted meanwhile
    assert await flush() == 5  # nothing lost
    assert store.views == Counter({post_id: 5})
