"""The first-page cache: served from Redis, invalidated per board by the worker, never stale for good."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text, update

from board.adapters.first_page_cache import FirstPageCache
from board.adapters.tables import RECOUNT_LIST_COUNTS, post_summaries
from board.bootstrap import read_model
from board.service_layer.projector import READ_MODEL
from chassis.read_model import rebuild
from chassis.redis import create_redis
from tests.integration.board.harness import BoardStack
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def _tamper(board: BoardStack, post_id: str, title: str) -> None:
    """Change a summary behind the projector's back: only an uncached read can see it."""
    async with board.engine.begin() as conn:
        await conn.execute(
            update(post_summaries)
            .where(post_summaries.c.post_id == uuid.UUID(post_id))
            .values(title=title)
        )


def _titles(page: dict[str, Any]) -> list[str]:
    return [item["title"] for item in page["items"]]


def _lookups(outcome: str) -> float:
    value = REGISTRY.get_sample_value("board_first_page_cache_lookups_total", {"outcome": outcome})
    return value or 0.0


async def test_a_first_page_is_served_from_redis_until_the_projector_changes_that_board(
    board: BoardStack,
) -> None:
    free, notice = await board.board_id("free"), await board.board_id("notice")
    post = await board.write_post(uuid.uuid4(), "자유 글")
    created = await board.client.post(
        f"/api/boards/{notice}/posts",
        json={"title": "공지 글", "content": "본문"},
        headers=board.auth(uuid.uuid4(), "ADMIN"),
    )
    assert created.status_code == 201, created.text
    news = created.json()
    await board.wait_for_item(free, post["id"], lambda i: True, "the free post")
    await board.wait_for_item(notice, news["id"], lambda i: True, "the notice")
    hits = _lookups("hit")
    assert _titles(await board.board_posts(free)) == ["자유 글"]  # stored under this generation
    assert _titles(await board.board_posts(notice)) == ["공지 글"]

    await _tamper(board, post["id"], "몰래 바뀐 제목")
    await _tamper(board, news["id"], "몰래 바뀐 공지")

    # the cached first pages hide the change; an uncached page or a search shows it at once
    assert _titles(await board.board_posts(free)) == ["자유 글"]
    assert _titles(await board.board_posts(notice)) == ["공지 글"]
    assert _lookups("hit") - hits == 2
    assert _titles(await board.board_posts(free, q="몰래")) == ["몰래 바뀐 제목"]
    assert _titles(await board.board_posts(free, size=1, page=1, q="제목")) == ["몰래 바뀐 제목"]

    # a change projected into the free board invalidates the free board's pages only
    later = await board.write_post(uuid.uuid4(), "새 글")
    await board.wait_for_item(free, later["id"], lambda i: True, "the new post")
    assert _titles(await board.board_posts(free)) == ["새 글", "몰래 바뀐 제목"]
    assert _titles(await board.board_posts(notice)) == ["공지 글"]


async def test_a_page_computed_before_an_invalidation_is_never_served_after_it(
    infra: Infra, topics: str
) -> None:
    redis = create_redis(infra.redis_url)
    cache = FirstPageCache(redis, f"{topics}board:", ttl_seconds=30)
    board_id, other = uuid.uuid4(), uuid.uuid4()
    try:
        stamp, cached = await cache.get(board_id, 20)
        assert cached is None
        # a slow reader queried PostgreSQL before the worker committed and invalidated
        await cache.invalidate([board_id])
        await cache.put(board_id, stamp, 20, '{"items": "old"}')
        assert (await cache.get(board_id, 20))[1] is None

        fresh_stamp, _ = await cache.get(board_id, 20)
        await cache.put(board_id, fresh_stamp, 20, '{"items": "new"}')
        await cache.put(other, (await cache.stamp(other)), 20, '{"items": "other"}')
        assert (await cache.get(board_id, 20))[1] == '{"items": "new"}'
        assert (await cache.get(board_id, 50))[1] is None  # each page size is its own entry
        pages = [k async for k in redis.scan_iter(match=f"{topics}board:first-page:*:page:*")]
        assert len(pages) == 2  # the fresh entry replaced the stale one; the other board's
        ttls = [await redis.pttl(k) for k in pages]
        assert all(25_000 < ttl <= 30_000 for ttl in ttls), ttls

        # a slow reader storing a page of the old generation late makes a miss, never a hit
        await cache.put(board_id, stamp, 20, '{"items": "old"}')
        assert (await cache.get(board_id, 20))[1] is None
        await cache.put(board_id, fresh_stamp, 20, '{"items": "new"}')

        await cache.invalidate_committed(None)  # a rebuilt read model: every board
        assert (await cache.get(board_id, 20))[1] is None
        assert (await cache.get(other, 20))[1] is None
    finally:
        await redis.aclose()


async def test_a_rebuild_invalidates_every_cached_first_page(board: BoardStack) -> None:
    free = await board.board_id("free")
    post = await board.write_post(uuid.uuid4(), "원래 제목")
    await board.wait_for_item(free, post["id"], lambda i: True, "the post")
    await _tamper(board, post["id"], "망가진 제목")
    assert _titles(await board.board_posts(free)) == ["망가진 제목"]  # cached, damaged

    await rebuild(
        board.engine,
        board.settings.kafka_connection(),
        [board.settings.topic(name) for name in READ_MODEL.topics],
        read_model(board.first_pages),
        service="board",
    )

    assert _titles(await board.board_posts(free)) == ["원래 제목"]


async def test_without_redis_the_first_page_comes_from_postgresql(
    board_api: BoardStack, infra: Infra
) -> None:
    free = await board_api.board_id("free")
    post = await board_api.write_post(uuid.uuid4(), "레디스 없이")
    async with board_api.engine.begin() as conn:  # no worker here: project the post by hand
        await conn.execute(
            post_summaries.insert().values(
                post_id=uuid.UUID(post["id"]),
                board_id=uuid.UUID(free),
                title=post["title"],
                author_id=None,
                author_nickname="누군가",
                comment_count=0,
                view_count=0,
                created_at=dt.datetime.fromisoformat(post["created_at"]),
                updated_at=dt.datetime.fromisoformat(post["created_at"]),
                version=1,
                deleted=False,
            )
        )
        await conn.execute(text(RECOUNT_LIST_COUNTS))  # the list's total, as the projector keeps it
    dead = create_redis("redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert board_api.first_pages is not None
    real, board_api.first_pages.redis = board_api.first_pages.redis, dead
    errors = _lookups("error")
    try:
        page = await board_api.board_posts(free)
        await board_api.first_pages.invalidate_committed([uuid.UUID(free)])  # logged, not raised
    finally:
        board_api.first_pages.redis = real
        await dead.aclose()

    assert _titles(page) == ["레디스 없이"]
    assert page["total"] == 1
    assert _lookups("error") - errors == 1


async def test_a_cached_first_page_is_read_in_one_round_trip(infra: Infra, topics: str) -> None:
    redis = create_redis(infra.redis_url)
    cache = FirstPageCache(redis, f"{topics}board:", ttl_seconds=30)
    board_id = uuid.uuid4()
    sent: list[tuple[Any, ...]] = []
    execute = redis.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(args)
        return await execute(*args, **options)  # type: ignore[no-untyped-call]

    try:
        stamp, _ = await cache.get(board_id, 20)
        await cache.put(board_id, stamp, 20, '{"items": []}')
        redis.execute_command = counted  # type: ignore[method-assign]
        assert await cache.get(board_id, 20) == (stamp, '{"items": []}')
        assert [args[0] for args in sent] == ["MGET"]
    finally:
        await redis.aclose()
