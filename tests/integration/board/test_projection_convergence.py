"""post_summaries converges whatever the order and multiplicity of events, and a DLQ replay repairs it (issue 11)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from board.adapters.tables import authors, post_summaries, post_summary_comments, posts
from board.bootstrap import build_worker
from board.entrypoints.event_handlers import CONSUMER, EventConsumer
from board.service_layer import saga_steps
from board.service_layer.projector import PostSummaryProjector
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.db import create_session_factory, inbox_table, outbox_table, utcnow
from chassis.messaging.envelope import Envelope
from chassis.messaging.producer import create_producer
from tests.integration.board.harness import BoardStack
from tests.support import projections

pytestmark = pytest.mark.integration

SEEDS = (1, 2, 3, 4)


def _member_event(event_type: str, member_id: uuid.UUID, **data: Any) -> Envelope:
    return Envelope.new(
        event_type, "member", {"member_id": str(member_id), **data}, key=str(member_id)
    )


async def _history(board: BoardStack) -> list[Envelope]:
    """A realistic life of two posts and a deleted one, with both authors' member events."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    events = [
        _member_event("MemberRegistered", alice, nickname="앨리스", role="USER", profile_version=1),
        _member_event("MemberRegistered", bob, nickname="밥", role="USER", profile_version=1),
    ]
    first = await board.write_post(alice, "앨리스의 글")
    second = await board.write_post(bob, "밥의 글")
    doomed = await board.write_post(bob, "지워질 글")
    for title in ("앨리스의 고친 글", "앨리스의 두 번 고친 글"):
        edited = await board.client.patch(
            f"/api/posts/{first['id']}", json={"title": title}, headers=board.auth(alice)
        )
        assert edited.status_code == 200, edited.text
    comments: list[tuple[str, str]] = []
    for post, who in ((first, bob), (first, alice), (first, bob), (second, alice), (doomed, bob)):
        added = await board.client.post(
            f"/api/posts/{post['id']}/comments", json={"content": "댓글"}, headers=board.auth(who)
        )
        assert added.status_code == 201, added.text
        comments.append((post["id"], added.json()["id"]))
    removed = await board.client.delete(
        "/api/posts/{}/comments/{}".format(*comments[0]), headers=board.auth(bob)
    )
    assert removed.status_code == 204, removed.text
    gone = await board.client.delete(f"/api/posts/{doomed['id']}", headers=board.auth(bob))
    assert gone.status_code == 204, gone.text
    events.append(
        _member_event("MemberProfileChanged", alice, nickname="앨리스2", profile_version=2)
    )
    # bob withdraws: the saga anonymizes his posts and comments, then member says he is gone
    async with BoardUnitOfWork(create_session_factory(board.engine)) as uow:
        await saga_steps.anonymize_author(uow, "withdrawal-1", bob)
        await uow.commit()
    events.append(_member_event("MemberWithdrawn", bob))
    return events + await projections.outbox_events(board.engine)


async def _project(board: BoardStack, events: Sequence[Envelope]) -> list[list[dict[str, Any]]]:
    """Start from an empty read model (and author copy) and feed ``events`` to the worker's
    real consumer handler; returns the summaries and the comment set."""
    async with board.engine.begin() as conn:
        for table in (post_summaries, post_summary_comments, authors):
            await conn.execute(delete(table))
        await conn.execute(delete(inbox_table).where(inbox_table.c.consumer == CONSUMER))
    assert board.first_pages is not None
    consumer = EventConsumer(
        lambda: BoardUnitOfWork(create_session_factory(board.engine)),
        board.first_pages,
        service="board",
    )
    for env in events:
        await consumer.handle(env)
    return [
        await projections.rows(board.engine, post_summaries, "post_id"),
        await projections.rows(board.engine, post_summary_comments, "kind", "child_id"),
    ]


async def test_the_read_model_is_the_same_for_every_order_and_multiplicity(
    board_api: BoardStack,
) -> None:
    events = await _history(board_api)
    in_order = await _project(board_api, events)
    summaries = {str(r["post_id"]): r for r in in_order[0]}
    async with board_api.engine.connect() as conn:
        written = {
            str(r.id): r for r in await conn.execute(select(posts).order_by(posts.c.created_at))
        }
    assert len(summaries) == 3
    for post_id, post in written.items():  # what the write model implies
        row = summaries[post_id]
        assert row["deleted"] is (post.deleted_at is not None)
        if not row["deleted"]:
            assert (row["title"], row["comment_count"]) == (post.title, post.comment_count)
    nicknames = sorted(r["author_nickname"] for r in in_order[0] if not r["deleted"])
    assert nicknames == ["앨리스2", "탈퇴한 회원"]

    for seed in SEEDS:
        shuffled = projections.shuffled_with_duplicates(events, seed)
        assert await _project(board_api, shuffled) == in_order, f"seed {seed}"


@asynccontextmanager
async def _worker(board: BoardStack) -> AsyncIterator[None]:
    app = build_worker(board.settings)
    async with app.router.lifespan_context(app):
        yield


async def test_a_replayed_dead_letter_repairs_the_comment_count(board_api: BoardStack) -> None:
    """The issue's failure: 150 comments, one CommentAdded dead-lettered by a database outage
    while newer events of the same post went through. The list shows 149 until the DLQ is
    replayed, then 150, as the write model says (also through the cached first page)."""
    board = board_api
    settings = board.settings
    author = uuid.uuid4()
    free = await board.board_id("free")
    post = await board.write_post(author, "댓글 많은 글")
    for n in range(150):
        added = await board.client.post(
            f"/api/posts/{post['id']}/comments",
            json={"content": f"댓글 {n}"},
            headers=board.auth(author),
        )
        assert added.status_code == 201, added.text
    edited = await board.client.patch(
        f"/api/posts/{post['id']}",
        json={"title": "댓글 많은 글 (고침)"},
        headers=board.auth(author),
    )
    assert edited.status_code == 200, edited.text
    events = await projections.outbox_events(board.engine)
    async with board.engine.begin() as conn:  # this test publishes them itself
        await conn.execute(update(outbox_table).values(published_at=utcnow()))
    assert [e.type for e in events].count("CommentAdded") == 150
    lost = [e for e in events if e.type == "CommentAdded"][75]

    topic = settings.topic("board.events")
    producer = create_producer(settings.kafka_connection(), "tests")
    async with AsyncExitStack() as stack:
        await producer.start()
        stack.push_async_callback(producer.stop)
        for offset, env in enumerate(events):
            if env is lost:
                await projections.dead_letter(
                    producer,
                    topic,
                    env,
                    group=f"{settings.KAFKA_TOPIC_PREFIX}{CONSUMER}",
                    offset=offset,
                )
            else:
                await projections.produce(producer, topic, env)
        await stack.enter_async_context(_worker(board))

        item = await board.wait_for_item(
            free, post["id"], lambda i: i["title"] == "댓글 많은 글 (고침)", "the newer events"
        )
        assert item["comment_count"] == 149  # the dead-lettered comment is missing

        await projections.chassis_dlq_replay(
            "board.events",
            bootstrap=settings.KAFKA_BOOTSTRAP_SERVERS,
            prefix=settings.KAFKA_TOPIC_PREFIX,
        )
        item = await board.wait_for_item(
            free, post["id"], lambda i: i["comment_count"] == 150, "the replayed comment counted"
        )
    async with board.engine.connect() as conn:
        written = await conn.scalar(
            select(posts.c.comment_count).where(posts.c.id == uuid.UUID(post["id"]))
        )
    assert written == item["comment_count"] == 150
    assert item["title"] == "댓글 많은 글 (고침)"


async def test_a_nickname_change_racing_a_new_post_reaches_it(board_api: BoardStack) -> None:
    """Two worker replicas: one projects PostCreated (not yet committed) while the other handles
    the author's MemberProfileChanged. The change must reach the new summary too; without the
    author lock it updates every committed row, misses the new one, and that row keeps the old
    nickname for good."""
    board = board_api
    author = uuid.uuid4()
    free = await board.board_id("free")
    assert board.first_pages is not None
    sessions = create_session_factory(board.engine)
    consumer = EventConsumer(
        lambda: BoardUnitOfWork(sessions),
        board.first_pages,
        service="board",
    )
    await consumer.handle(
        _member_event("MemberRegistered", author, nickname="예전", role="USER", profile_version=1)
    )
    post_id = uuid.uuid4()
    created = Envelope.new(
        "PostCreated",
        "board",
        {
            "post_id": str(post_id),
            "board_id": str(free),
            "author_id": str(author),
            "title": "새 글",
            "created_at": utcnow().isoformat(),
            "version": 1,
        },
        key=str(post_id),
    )
    projector = PostSummaryProjector(post_summaries, post_summary_comments)
    async with sessions() as first, first.begin():
        await projector.apply(first, created)  # replica 1, not committed yet
        renamed = asyncio.create_task(
            consumer.handle(
                _member_event("MemberProfileChanged", author, nickname="새이름", profile_version=2)
            )
        )
        await asyncio.sleep(1.0)  # replica 2 runs meanwhile
    await asyncio.wait_for(renamed, 10)
    async with board.engine.connect() as conn:
        shown = await conn.scalar(
            select(post_summaries.c.author_nickname).where(post_summaries.c.post_id == post_id)
        )
    assert shown == "새이름"
