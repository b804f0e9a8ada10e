"""The projection ignores duplicates and older events, and a rebuild reproduces the same read model."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from board.adapters.tables import post_summaries, post_summary_comments, posts
from board.bootstrap import read_model
from board.cli import main as board_cli
from board.service_layer import handlers
from board.service_layer.projector import READ_MODEL
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.db import create_session_factory, outbox_table
from chassis.read_model import RebuildRefused, Tables, rebuild
from tests.integration.board.harness import BoardStack, eventually
from tests.support import projections

pytestmark = pytest.mark.integration


async def _published(stack: BoardStack, post_id: str) -> list[dict[str, Any]]:
    """The post's events as the outbox staged them, in order."""
    async with stack.engine.connect() as conn:
        rows = await conn.execute(
            select(outbox_table.c.id, outbox_table.c.type, outbox_table.c.payload)
            .where(outbox_table.c.key == post_id)
            .order_by(outbox_table.c.seq)
        )
        return [{"id": str(r.id), "type": r.type, "data": dict(r.payload)} for r in rows]


def _topics(stack: BoardStack) -> list[str]:
    return [stack.settings.topic(name) for name in READ_MODEL.topics]


async def _summary(stack: BoardStack, post_id: str) -> dict[str, Any]:
    return next(r for r in await stack.summaries() if str(r["post_id"]) == post_id)


async def test_duplicate_and_older_events_leave_the_read_model_unchanged(
    board: BoardStack,
) -> None:
    author = uuid.uuid4()
    free = await board.board_id("free")
    post = await board.write_post(author, "v1")
    edited = await board.client.patch(
        f"/api/posts/{post['id']}", json={"title": "v2"}, headers=board.auth(author)
    )
    assert edited.status_code == 200, edited.text
    commented = await board.client.post(
        f"/api/posts/{post['id']}/comments", json={"content": "댓글"}, headers=board.auth(author)
    )
    assert commented.status_code == 201
    await board.wait_for_item(
        free, post["id"], lambda i: (i["title"], i["comment_count"]) == ("v2", 1), "v2, 1 comment"
    )
    before = await _summary(board, post["id"])
    created, updated, comment_added = await _published(board, post["id"])
    assert [e["type"] for e in (created, updated, comment_added)] == [
        "PostCreated",
        "PostUpdated",
        "CommentAdded",
    ]
    # the row's version guards the post's own fields: the comment (version 3) is in the set
    assert (before["version"], comment_added["data"]["version"]) == (2, 3)

    # The same message again (same id), then older versions under new ids.
    await board.send(
        "board.events", "PostUpdated", post["id"], updated["data"], event_id=updated["id"]
    )
    await board.send("board.events", "PostCreated", post["id"], created["data"])
    await board.send(
        "board.events", "PostUpdated", post["id"], {**updated["data"], "title": "stale"}
    )
    await board.send("board.events", "CommentAdded", post["id"], comment_added["data"])
    # A later post on the same partition: once it is listed, the events above were handled.
    sentinel = await board.write_post(author, "sentinel")
    await board.wait_for_item(free, sentinel["id"], lambda i: True, "the sentinel post")

    assert await _summary(board, post["id"]) == before
    item = await board.wait_for_item(free, post["id"], lambda i: True, "the post")
    assert (item["title"], item["comment_count"]) == ("v2", 1)


async def test_a_rebuild_gives_the_same_read_model_and_the_projector_goes_on(
    board: BoardStack,
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    free = await board.board_id("free")
    await board.send(
        "member.events",
        "MemberRegistered",
        str(alice),
        {"member_id": str(alice), "nickname": "앨리스", "role": "USER"},
        source="member",
    )
    first = await board.write_post(alice, "앨리스의 글")
    second = await board.write_post(bob, "밥의 글")
    doomed = await board.write_post(bob, "지워질 글")
    comment = await board.client.post(
        f"/api/posts/{first['id']}/comments", json={"content": "좋아요"}, headers=board.auth(bob)
    )
    assert comment.status_code == 201
    assert (
        await board.client.patch(
            f"/api/posts/{second['id']}", json={"title": "밥의 고친 글"}, headers=board.auth(bob)
        )
    ).status_code == 200
    assert (
        await board.client.delete(f"/api/posts/{doomed['id']}", headers=board.auth(bob))
    ).status_code == 204
    for _ in range(2):
        assert (await board.client.get(f"/api/posts/{first['id']}")).status_code == 200
    await board.send(
        "member.events",
        "MemberProfileChanged",
        str(alice),
        {"member_id": str(alice), "nickname": "앨리스2"},
        source="member",
    )
    await board.wait_for_item(
        free,
        first["id"],
        lambda i: (
            (i["author"]["nickname"], i["comment_count"], i["view_count"]) == ("앨리스2", 1, 2)
        ),
        "the first post settled",
    )
    await board.wait_for_item(
        free, second["id"], lambda i: i["title"] == "밥의 고친 글", "the edit"
    )

    async def doomed_gone() -> bool:
        return bool((await board.board_posts(free))["total"] == 2)

    await eventually(doomed_gone, "the deleted post to leave the list")
    before = await board.summaries()
    comments = await projections.rows(board.engine, post_summary_comments, "kind", "child_id")

    report = await rebuild(
        board.engine,
        board.settings.kafka_connection(),
        _topics(board),
        read_model(board.first_pages),
        service="board",
    )

    assert await board.summaries() == before
    assert (
        await projections.rows(board.engine, post_summary_comments, "kind", "child_id") == comments
    )
    # the counters: all posts, the board, and each of the two authors
    assert report.rows == {
        "post_summaries": len(before),
        "post_summary_comments": 1,
        "post_list_counts": 4,
    }
    assert len(before) == 3  # two posts and one tombstone
    # MemberRegistered, 3 x PostCreated, CommentAdded, PostUpdated, PostDeleted, MemberProfileChanged
    assert (report.events_applied, report.events_skipped) == (8, 0)
    async with board.engine.connect() as conn:
        indexes = set(
            (
                await conn.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'post_summaries'")
                )
            ).scalars()
        )
        leftovers = await conn.scalar(text("SELECT to_regclass('post_summaries_rebuild')"))
        comment_indexes = set(
            (
                await conn.execute(
                    text(
                        "SELECT indexname FROM pg_indexes WHERE tablename = 'post_summary_comments'"
                    )
                )
            ).scalars()
        )
    assert comment_indexes == {"pk_post_summary_comments", "ix_post_summary_comments_parent"}
    assert indexes == {
        "pk_post_summaries",
        "ix_post_summaries_board_created",
        "ix_post_summaries_author_created",
        "ix_post_summaries_created",
        "ix_post_summaries_title_trgm",
    }
    assert leftovers is None

    # The running projector continues on the swapped-in table.
    later = await board.write_post(alice, "재구축 뒤의 글")
    item = await board.wait_for_item(free, later["id"], lambda i: True, "a post after the rebuild")
    assert item["author"]["nickname"] == "앨리스2"
    async with board.engine.connect() as conn:
        assert (
            await conn.scalar(
                select(post_summaries.c.title).where(
                    post_summaries.c.post_id == uuid.UUID(later["id"])
                )
            )
            == "재구축 뒤의 글"
        )


async def test_a_rebuild_while_posts_keep_coming_loses_nothing(board: BoardStack) -> None:
    free = await board.board_id("free")
    author = uuid.uuid4()
    for n in range(20):
        await board.write_post(author, f"이전 글 {n}")
    written: list[str] = []
    stop = asyncio.Event()

    async def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            post = await board.write_post(author, f"재구축 중의 글 {n}")
            written.append(post["id"])
            await board.client.post(
                f"/api/posts/{post['id']}/comments",
                json={"content": "댓글"},
                headers=board.auth(author),
            )
            n += 1

    writer = asyncio.create_task(keep_writing())
    try:
        await rebuild(
            board.engine,
            board.settings.kafka_connection(),
            _topics(board),
            read_model(board.first_pages),
            service="board",
        )
        during = len(written)

        async def more_after_the_swap() -> bool:
            return len(written) >= during + 3

        await eventually(more_after_the_swap, "posts written after the swap")
    finally:
        stop.set()
        await writer
    assert during > 0, "no post was written while the rebuild ran"

    async def read_model_matches_write_model() -> bool:
        async with board.engine.connect() as conn:
            live = (
                await conn.execute(
                    select(posts.c.id, posts.c.title, posts.c.comment_count).where(
                        posts.c.deleted_at.is_(None)
                    )
                )
            ).all()
            listed = (
                await conn.execute(
                    select(
                        post_summaries.c.post_id,
                        post_summaries.c.title,
                        post_summaries.c.comment_count,
                    ).where(~post_summaries.c.deleted)
                )
            ).all()
        return sorted(map(tuple, live)) == sorted(map(tuple, listed))

    await eventually(read_model_matches_write_model, "the read model to match every post")
    assert (await board.board_posts(free))["total"] == 20 + len(written)


async def test_a_rebuild_missing_a_live_post_is_refused_and_keeps_the_live_table(
    board_api: BoardStack,
) -> None:
    # Without a worker nothing relays the outbox: the topics never saw this post.
    await board_api.write_post(uuid.uuid4(), "토픽에 없는 글")
    before = await board_api.summaries()

    with pytest.raises(RebuildRefused, match="1 live posts are missing"):
        await rebuild(
            board_api.engine,
            board_api.settings.kafka_connection(),
            _topics(board_api),
            read_model(board_api.first_pages),
            service="board",
        )

    assert await board_api.summaries() == before
    async with board_api.engine.connect() as conn:
        assert await conn.scalar(text("SELECT to_regclass('post_summaries_rebuild')")) is None
        assert await conn.scalar(text("SELECT to_regclass('post_summaries')")) is not None


async def test_views_flushed_during_the_swap_reach_the_rebuilt_table(board: BoardStack) -> None:
    """The view flush writes the read model outside the projector. A flush that commits while
    the swap transaction holds the copied view counts would write the table about to be dropped,
    and the rebuilt list would show the old count; instead it waits for the swap
    (``exclude_rebuild``) and writes the new table."""
    free = await board.board_id("free")
    post = await board.write_post(uuid.uuid4(), "조회수")
    await board.wait_for_item(free, post["id"], lambda i: True, "the post")
    post_id = uuid.UUID(post["id"])
    copied, release = asyncio.Event(), asyncio.Event()
    model = read_model(board.first_pages)

    async def hold_the_swap(session: AsyncSession, fresh: Tables, started_at: dt.datetime) -> None:
        assert model.before_swap is not None
        await model.before_swap(session, fresh, started_at)  # the view counts are copied
        copied.set()
        await release.wait()

    rebuilding = asyncio.create_task(
        rebuild(
            board.engine,
            board.settings.kafka_connection(),
            _topics(board),
            dataclasses.replace(model, before_swap=hold_the_swap),
            service="board",
        )
    )
    try:
        await asyncio.wait_for(copied.wait(), 30)
        sessions = create_session_factory(board.engine)
        flushing = asyncio.create_task(
            handlers.record_views(BoardUnitOfWork(sessions), {post_id: 5})
        )
        done, _ = await asyncio.wait({flushing}, timeout=1.0)
        assert not done, "the flush wrote the read model while the swap was under way"
    finally:
        release.set()
        await rebuilding
    await asyncio.wait_for(flushing, 10)

    async with board.engine.connect() as conn:
        listed = await conn.scalar(
            select(post_summaries.c.view_count).where(post_summaries.c.post_id == post_id)
        )
        counted = await conn.scalar(select(posts.c.view_count).where(posts.c.id == post_id))
    assert listed == counted == 5


def _operator_env(stack: BoardStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment ``board rebuild-read-model`` runs with: the worker's."""
    settings = stack.settings
    for name, value in {
        "DATABASE_URL": settings.DATABASE_URL,
        "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
        "KAFKA_TOPIC_PREFIX": settings.KAFKA_TOPIC_PREFIX,
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
    }.items():
        monkeypatch.setenv(name, value)


async def test_the_cli_rebuilds_and_prints_the_report(
    board: BoardStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    free = await board.board_id("free")
    post = await board.write_post(uuid.uuid4(), "운영자가 재구축")
    await board.wait_for_item(free, post["id"], lambda i: True, "the post")
    before = await board.summaries()
    _operator_env(board, monkeypatch)

    await asyncio.to_thread(board_cli, ["rebuild-read-model"])

    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["read_model"] == "post_summaries"
    # the counters: all posts, the board and the author
    assert report["rows"] == {
        "post_summaries": 1,
        "post_summary_comments": 0,
        "post_list_counts": 3,
    }
    assert (report["events_applied"], report["events_skipped"]) == (1, 0)
    assert await board.summaries() == before


async def test_a_refused_rebuild_exits_with_status_1(
    board_api: BoardStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await board_api.write_post(uuid.uuid4(), "토픽에 없는 글")  # no worker: never relayed
    _operator_env(board_api, monkeypatch)

    with pytest.raises(SystemExit, match="1 live posts are missing") as refused:
        await asyncio.to_thread(board_cli, ["rebuild-read-model"])

    assert str(refused.value.code).startswith("board rebuild-read-model refused:")
