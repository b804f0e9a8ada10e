"""The worker process in-process against real Kafka: saga commands and replies, events relayed as
CloudEvents, and the member_activity projection with duplicates and a rebuild."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from sqlalchemy import select, text

from chassis.db import create_engine, projection_checkpoint_table
from chassis.messaging.envelope import Envelope
from chassis.saga import SagaCommand
from member.adapters.tables import member_activity_items
from member.bootstrap import build_worker, rebuild_read_model
from member.cli import main as member_cli
from member.config import Settings
from tests.integration.member.helpers import (
    bearer,
    ce_headers,
    log_in,
    publish,
    read_until,
    sign_up,
)
from tests.support import projections
from tests.support.infra import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def worker(settings: Settings, topics: str) -> AsyncIterator[FastAPI]:
    assert topics == settings.KAFKA_TOPIC_PREFIX
    app = build_worker(settings)
    async with app.router.lifespan_context(app):
        yield app


def command(name: str, saga_id: str, payload: dict[str, Any], **extra: Any) -> Envelope:
    body = SagaCommand(
        saga_id=saga_id,
        saga_type="answer-acceptance",
        step="transfer-points",
        command=name,
        payload=payload,
        **extra,
    )
    return Envelope.new(name, "saga", body.model_dump(mode="json"), key=saga_id)


def of_type(
    records: list[ConsumerRecord[bytes, bytes]], ce_type: str
) -> list[ConsumerRecord[bytes, bytes]]:
    return [r for r in records if ce_headers(r).get("ce_type") == ce_type]


async def test_saga_commands_over_kafka_and_events_as_cloudevents(
    client: httpx.AsyncClient, worker: FastAPI, settings: Settings
) -> None:
    asker, answerer = await sign_up(client), await sign_up(client)
    saga = str(uuid.uuid4())
    transfer = command(
        "TransferPoints",
        saga,
        {
            "from_member_id": asker["id"],
            "to_member_id": answerer["id"],
            "amount": 30,
            "question_id": str(uuid.uuid4()),
        },
    )
    overdraw = command(
        "TransferPoints",
        "overdraw",
        {
            "from_member_id": asker["id"],
            "to_member_id": answerer["id"],
            "amount": 1000,
            "question_id": str(uuid.uuid4()),
        },
    )
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    # the same message twice: a redelivery must not move points twice
    await publish(bootstrap, settings.topic("saga.member.commands"), [transfer, transfer, overdraw])

    replies = await read_until(
        bootstrap, settings.topic("saga.replies"), lambda rs: len(of_type(rs, "SagaReply")) >= 3
    )
    bodies = [json.loads(r.value) for r in of_type(replies, "SagaReply")]
    outcomes = {(b["saga_id"], b["outcome"]) for b in bodies}
    assert outcomes == {(saga, "SUCCESS"), ("overdraw", "FAILURE")}
    assert all(
        r.key == r_body["saga_id"].encode()
        for r, r_body in zip(of_type(replies, "SagaReply"), bodies, strict=True)
    )

    events = await read_until(
        bootstrap,
        settings.topic("member.events"),
        lambda rs: (
            len(of_type(rs, "MemberRegistered")) >= 2 and len(of_type(rs, "PointsTransferred")) >= 1
        ),
    )
    [moved] = of_type(events, "PointsTransferred")
    headers = ce_headers(moved)
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_source"] == "member"
    assert headers["content-type"] == "application/json"
    uuid.UUID(headers["ce_id"])
    assert moved.key == asker["id"].encode()
    registered = of_type(events, "MemberRegistered")
    assert {r.key for r in registered} == {asker["id"].encode(), answerer["id"].encode()}
    assert all(ce_headers(r)["ce_subject"] == r.key.decode() for r in registered if r.key)

    me = await client.get(
        "/api/members/me", headers=bearer((await log_in(client, asker["email"]))["access_token"])
    )
    assert me.json()["points"] == 70


def board(event_type: str, data: dict[str, Any], key: str) -> Envelope:
    return Envelope.new(event_type, "board", {**data, "version": 1}, key=key)


def qna(event_type: str, data: dict[str, Any], key: str) -> Envelope:
    return Envelope.new(event_type, "qna", {**data, "version": 1}, key=key)


async def test_activity_projection_with_duplicates_and_rebuild(
    client: httpx.AsyncClient,
    worker: FastAPI,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    author, asker = await sign_up(client), await sign_up(client)
    a = author["id"]
    auth = bearer((await log_in(client, author["email"]))["access_token"])
    post1, post2, question = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    created = board(
        "PostCreated", {"post_id": post1, "board_id": "b", "author_id": a, "title": "t"}, post1
    )
    board_events = [
        created,
        board(
            "PostCreated", {"post_id": post2, "board_id": "b", "author_id": a, "title": "t"}, post2
        ),
        created,  # published twice (an outbox relay re-send)
        board("CommentAdded", {"comment_id": "c1", "post_id": post1, "author_id": a}, post1),
        board("PostDeleted", {"post_id": post2, "board_id": "b", "author_id": a}, post2),
        board("PostUpdated", {"post_id": post1, "board_id": "b", "author_id": None}, post1),
    ]
    accepted = qna(
        "AnswerAccepted",
        {
            "question_id": question,
            "answer_id": "x",
            "answer_author_id": a,
            "asker_id": asker["id"],
            "bounty": 20,
        },
        question,
    )
    qna_events = [
        qna(
            "QuestionAsked",
            {"question_id": question, "author_id": a, "title": "q", "bounty": 0, "status": "OPEN"},
            question,
        ),
        qna("AnswerPosted", {"answer_id": "x", "question_id": question, "author_id": a}, question),
        accepted,
        accepted,
    ]
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    await publish(bootstrap, settings.topic("board.events"), board_events)
    await publish(bootstrap, settings.topic("qna.events"), qna_events)
    await publish(
        bootstrap,
        settings.topic("saga.member.commands"),
        [
            command(
                "TransferPoints",
                str(uuid.uuid4()),
                {
                    "from_member_id": asker["id"],
                    "to_member_id": a,
                    "amount": 20,
                    "question_id": question,
                },
            )
        ],
    )
    expected = {
        "posts": 1,
        "comments": 1,
        "questions": 1,
        "answers": 1,
        "accepted_answers": 1,
        "points": 120,
    }

    async def activity() -> dict[str, int]:
        response = await client.get("/api/members/me/activity", headers=auth)
        body: dict[str, int] = response.json()
        return body

    await wait_for(lambda: _equals(activity, expected), timeout=30, message="activity projected")

    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    try:

        async def checkpoints() -> dict[str, int]:
            async with engine.connect() as conn:
                rows = await conn.execute(select(projection_checkpoint_table))
                return {r.topic: r.next_offset for r in rows}

        # ignored events (PostUpdated) move the checkpoint too
        await wait_for(
            lambda: _equals(
                checkpoints,
                {
                    settings.topic("board.events"): len(board_events),
                    settings.topic("qna.events"): len(qna_events),
                    settings.topic("member.events"): 3,  # two registrations, one transfer
                },
            ),
            message="checkpoints",
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=worker), base_url="http://worker"
        ) as probe:
            metrics = (await probe.get("/metrics")).text
        # the gauge is the last offset applied (the checkpoint row holds the next one)
        gauge = (
            f'projection_checkpoint_offset{{partition="0",projection="member_activity",'
            f'service="member",topic="{settings.topic("board.events")}"}} {len(board_events) - 1}.0'
        )
        assert gauge in metrics
        items = await projections.rows(engine, member_activity_items, "kind", "child_id")
        async with engine.begin() as conn:
            # damage the read model: the rebuild must restore it from the topics
            await conn.execute(text("UPDATE member_activity SET posts = 42, comments = 7"))
            await conn.execute(text("DELETE FROM member_activity_items WHERE kind = 'comments'"))

        report = await rebuild_read_model(settings)

        # every event is replayed, duplicates included (applying one again changes nothing)
        assert (report.events_applied, report.events_skipped) == (
            len(board_events) + len(qna_events) + 3,
            0,
        )
        assert await activity() == expected
        # the same item sets as the live projection built
        assert await projections.rows(engine, member_activity_items, "kind", "child_id") == items
        async with engine.connect() as conn:
            indexes = set(
                (
                    await conn.execute(
                        text(
                            "SELECT indexname FROM pg_indexes WHERE tablename "
                            "IN ('member_activity', 'member_activity_items')"
                        )
                    )
                ).scalars()
            )
        assert indexes == {
            "member_activity_pkey",
            "pk_member_activity_items",
            "ix_member_activity_items_parent",
        }

        # live projection continues on the swapped-in table, with nothing counted twice
        post3 = str(uuid.uuid4())
        await publish(
            bootstrap,
            settings.topic("board.events"),
            [
                board(
                    "PostCreated",
                    {"post_id": post3, "board_id": "b", "author_id": a, "title": "t"},
                    post3,
                )
            ],
        )
        await wait_for(
            lambda: _equals(activity, {**expected, "posts": 2}), timeout=30, message="new post"
        )
        # a second rebuild, through the CLI as an operator runs it, finds the same state
        for name, value in {
            "DATABASE_URL": settings.DATABASE_URL,
            "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
            "KAFKA_TOPIC_PREFIX": settings.KAFKA_TOPIC_PREFIX,
        }.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        await asyncio.to_thread(member_cli, ["rebuild-read-model"])
        again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (again["read_model"], again["rows"]["member_activity"]) == ("member_activity", 2)
        assert await activity() == {**expected, "posts": 2}
    finally:
        await engine.dispose()


async def _equals(read: Any, expected: dict[str, int]) -> bool:
    return bool(await read() == expected)
