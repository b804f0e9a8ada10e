"""member_activity converges whatever the order and multiplicity of events, and a DLQ replay repairs it (issue 11)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.db import create_engine, create_session_factory, inbox_table
from chassis.messaging.envelope import Envelope
from chassis.messaging.producer import create_producer
from chassis.token_denylist import TokenDenyList
from member.adapters.tables import member_activity, member_activity_items, members
from member.bootstrap import build_worker
from member.config import Settings
from member.domain.commands import (
    CompleteWithdrawal,
    RefundPoints,
    StartWithdrawal,
    TransferPoints,
)
from member.entrypoints.event_handlers import activity_projector
from member.service_layer import saga_steps
from member.service_layer.projector import CONSUMER
from member.service_layer.unit_of_work import MemberUnitOfWork
from tests.integration.member.helpers import sign_up
from tests.support import projections
from tests.support.infra import wait_for

pytestmark = pytest.mark.integration

SEEDS = (1, 2, 3, 4)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.DATABASE_URL, pool_size=2)
    yield engine
    await engine.dispose()


def _event(source: str, event_type: str, key: str, **data: Any) -> Envelope:
    return Envelope.new(event_type, source, {**data, "version": 1}, key=key)


async def _history(
    client: httpx.AsyncClient, engine: AsyncEngine, deny_list: TokenDenyList
) -> list[Envelope]:
    """Three members post, comment, ask, answer and get an answer accepted (board and qna
    events), move points under two sagas (one refunded), and one withdraws after being
    anonymized, so the deletions of their post and comment no longer name them."""
    alice, bob, carol = [uuid.UUID((await sign_up(client))["id"]) for _ in range(3)]
    p1, p2, p3, p4 = (str(uuid.uuid4()) for _ in range(4))
    c1, c2, c3, c4 = (str(uuid.uuid4()) for _ in range(4))
    q1, a1, a2 = (str(uuid.uuid4()) for _ in range(3))

    def post(event_type: str, post_id: str, author: uuid.UUID | None) -> Envelope:
        author_id = str(author) if author else None
        return _event("board", event_type, post_id, post_id=post_id, author_id=author_id)

    def comment(
        event_type: str, post_id: str, comment_id: str, author: uuid.UUID | None
    ) -> Envelope:
        author_id = str(author) if author else None
        return _event(
            "board",
            event_type,
            post_id,
            post_id=post_id,
            comment_id=comment_id,
            author_id=author_id,
        )

    events = [
        post("PostCreated", p1, alice),
        post("PostCreated", p2, alice),
        post("PostCreated", p3, bob),
        post("PostCreated", p4, carol),
        comment("CommentAdded", p1, c1, bob),
        comment("CommentAdded", p1, c2, bob),
        comment("CommentAdded", p3, c3, alice),
        comment("CommentAdded", p3, c4, carol),
        comment("CommentDeleted", p1, c2, bob),
        post("PostDeleted", p2, alice),
        _event("qna", "QuestionAsked", q1, question_id=q1, author_id=str(alice)),
        _event("qna", "AnswerPosted", q1, question_id=q1, answer_id=a1, author_id=str(bob)),
        _event("qna", "AnswerPosted", q1, question_id=q1, answer_id=a2, author_id=str(carol)),
        _event("qna", "AnswerDeleted", q1, question_id=q1, answer_id=a2, author_id=str(carol)),
        _event(
            "qna",
            "AnswerAccepted",
            q1,
            question_id=q1,
            answer_id=a1,
            answer_author_id=str(bob),
            asker_id=str(alice),
            bounty=30,
        ),
        # carol's withdrawal anonymized her post and comment; then both were deleted
        post("PostUpdated", p4, None),
        post("PostDeleted", p4, None),
        comment("CommentDeleted", p3, c4, None),
    ]
    sessions = create_session_factory(engine)
    steps: list[Callable[[MemberUnitOfWork], Awaitable[object]]] = [
        lambda uow: saga_steps.transfer(uow, TransferPoints("accept-1", alice, bob, 30, q1)),
        lambda uow: saga_steps.transfer(uow, TransferPoints("accept-2", alice, carol, 10, q1)),
        lambda uow: saga_steps.refund(uow, RefundPoints("accept-2", alice, carol, 10, q1)),
        lambda uow: saga_steps.start_withdrawal(uow, StartWithdrawal("withdraw-1", carol)),
        lambda uow: saga_steps.complete_withdrawal(
            uow, CompleteWithdrawal("withdraw-1", carol), deny_list
        ),
    ]
    for step in steps:
        async with MemberUnitOfWork(sessions, "member") as uow:
            await step(uow)
            await uow.commit()
    return events + await projections.outbox_events(engine)


async def _project(engine: AsyncEngine, events: Sequence[Envelope]) -> list[list[dict[str, Any]]]:
    """Start from an empty read model and feed ``events`` to the worker's real handler."""
    async with engine.begin() as conn:
        for table in (member_activity, member_activity_items):
            await conn.execute(delete(table))
        await conn.execute(delete(inbox_table).where(inbox_table.c.consumer == CONSUMER))
    sessions = create_session_factory(engine)
    handle = activity_projector(lambda: MemberUnitOfWork(sessions, "member"), "member")
    for env in events:
        await handle(env)
    activity = await projections.rows(engine, member_activity, "member_id")
    for row in activity:
        row.pop("updated_at")  # when it was projected, not what
    return [activity, await projections.rows(engine, member_activity_items, "kind", "child_id")]


async def test_the_read_model_is_the_same_for_every_order_and_multiplicity(
    client: httpx.AsyncClient, engine: AsyncEngine, redis: Redis
) -> None:
    events = await _history(client, engine, TokenDenyList(redis, ttl_seconds=60))
    assert {"PointsTransferred", "PointsRefunded", "MemberWithdrawn"} <= {e.type for e in events}
    in_order = await _project(engine, events)

    async with engine.connect() as conn:
        points = {r.id: r.points for r in await conn.execute(select(members))}
    counted = ("posts", "comments", "questions", "answers", "accepted_answers")
    counters = {r["member_id"]: tuple(r[c] for c in counted) for r in in_order[0]}
    by_points = {p: m for m, p in points.items()}  # 100 - 30, 100 + 30, 100 (refunded)
    alice, bob, carol = by_points[70], by_points[130], by_points[100]
    assert counters == {
        alice: (1, 1, 1, 0, 0),
        bob: (1, 1, 0, 1, 1),
        carol: (0, 0, 0, 0, 0),
    }
    # the points equal the balances of the write model (the sign-up grant and the transfers)
    assert {r["member_id"]: r["points"] for r in in_order[0]} == points

    for seed in SEEDS:
        shuffled = projections.shuffled_with_duplicates(events, seed)
        assert await _project(engine, shuffled) == in_order, f"seed {seed}"


async def test_a_replayed_dead_letter_repairs_the_activity(
    client: httpx.AsyncClient, settings: Settings, topics: str, engine: AsyncEngine
) -> None:
    """One CommentAdded dead-lettered by a database outage while the member's newer events
    went through: the activity is wrong until the DLQ replay."""
    author = (await sign_up(client))["id"]
    post_id = str(uuid.uuid4())
    events = [_event("board", "PostCreated", post_id, post_id=post_id, author_id=author)] + [
        _event(
            "board",
            "CommentAdded",
            post_id,
            post_id=post_id,
            comment_id=str(uuid.uuid4()),
            author_id=author,
        )
        for _ in range(40)
    ]
    lost = events[20]
    topic = settings.topic("board.events")
    producer = create_producer(settings.kafka_connection(), "tests")
    await producer.start()
    try:
        for offset, env in enumerate(events):
            if env is lost:
                await projections.dead_letter(
                    producer, topic, env, group=settings.topic(CONSUMER), offset=offset
                )
            else:
                await projections.produce(producer, topic, env)
    finally:
        await producer.stop()

    async def activity() -> dict[str, Any] | None:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(member_activity).where(member_activity.c.member_id == uuid.UUID(author))
                )
            ).first()
            return dict(row._mapping) if row else None

    worker = build_worker(settings)
    async with worker.router.lifespan_context(worker):

        async def settled(comments: int) -> dict[str, Any] | None:
            row = await activity()
            return row if row and (row["posts"], row["comments"]) == (1, comments) else None

        await wait_for(lambda: settled(39), timeout=30, message="the newer events")
        await projections.chassis_dlq_replay(
            "board.events",
            bootstrap=settings.KAFKA_BOOTSTRAP_SERVERS,
            prefix=settings.KAFKA_TOPIC_PREFIX,
        )
        row = await wait_for(lambda: settled(40), timeout=30, message="the replayed comment")
    assert isinstance(row, dict)
    assert row["points"] == 100  # the sign-up grant, once
