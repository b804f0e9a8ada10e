"""The question lists' counters (question_list_counts) equal count(*) of the summaries after any event sequence, a rebuild and a recount (issue 15, P6)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.db import create_engine
from chassis.messaging.envelope import Envelope
from chassis.read_model import rebuild
from qna.adapters.tables import (
    QUESTION_LIST_COUNTS,
    RECOUNT_LIST_COUNTS,
    question_list_counts,
    question_summaries,
)
from qna.config import Settings
from qna.service_layer.projector import READ_MODEL
from tests.support import list_counts, projections
from tests.support.infra import Infra
from tests.support.kafka import send_envelope

pytestmark = pytest.mark.integration

SEEDS = (21, 22, 23)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.DATABASE_URL)
    yield engine
    await engine.dispose()


def _event(kind: str, source: str, key: uuid.UUID, **data: object) -> Envelope:
    return Envelope.new(
        kind,
        source,
        {k: str(v) if isinstance(v, uuid.UUID | dt.datetime) else v for k, v in data.items()},
        key=str(key),
    )


def _history(rng: random.Random) -> list[Envelope]:
    """Questions by four members: asked, edited, closed and reopened, answered and accepted,
    some deleted; one member withdraws."""
    members = [uuid.uuid4() for _ in range(4)]
    events = [
        _event("MemberRegistered", "member", m, member_id=m, nickname=f"회원{i}", profile_version=1)
        for i, m in enumerate(members)
    ]
    for n in range(24):
        question, author = uuid.uuid4(), rng.choice(members)
        at = T0 + dt.timedelta(minutes=n)
        common = {"question_id": question}
        events.append(
            _event(
                "QuestionAsked",
                "qna",
                question,
                **common,
                version=1,
                occurred_at=at,
                author_id=author,
                title=f"질문 {n}",
                bounty=10,
                status="OPEN",
                created_at=at,
            )
        )
        version = 1
        for _ in range(rng.randrange(4)):
            version += 1
            when = at + dt.timedelta(seconds=version)
            kind = rng.choice(["QuestionUpdated", "QuestionClosed", "QuestionReopened"])
            if kind == "QuestionUpdated":
                status = rng.choice(["OPEN", "ACCEPTING", "RESOLVED"])
                events.append(
                    _event(
                        kind,
                        "qna",
                        question,
                        **common,
                        version=version,
                        occurred_at=when,
                        author_id=author,
                        title=f"질문 {n} v{version}",
                        bounty=10,
                        status=status,
                    )
                )
            else:
                events.append(
                    _event(kind, "qna", question, **common, version=version, occurred_at=when)
                )
        answer = uuid.uuid4()
        if rng.random() < 0.5:
            events.append(
                _event(
                    "AnswerPosted",
                    "qna",
                    question,
                    **common,
                    answer_id=answer,
                    version=version,
                    occurred_at=at,
                )
            )
            if rng.random() < 0.5:
                events.append(
                    _event(
                        "AnswerAccepted",
                        "qna",
                        question,
                        **common,
                        answer_id=answer,
                        version=version,
                        occurred_at=at,
                    )
                )
        if rng.random() < 0.3:
            events.append(
                _event(
                    "QuestionDeleted",
                    "qna",
                    question,
                    **common,
                    version=version + 1,
                    occurred_at=at,
                )
            )
    events.append(_event("MemberWithdrawn", "member", members[0], member_id=members[0]))
    return events


@pytest.mark.parametrize("seed", SEEDS)
async def test_the_counters_equal_count_star_after_any_delivery_and_a_rebuild(
    engine: AsyncEngine, settings: Settings, infra: Infra, seed: int
) -> None:
    rng = random.Random(seed)
    # shuffled: versions and status moves out of order, events before their question; twice over
    delivered = projections.shuffled_with_duplicates(_history(rng), seed, duplicates=20)
    await list_counts.apply_each(engine, READ_MODEL, QUESTION_LIST_COUNTS, delivered)
    live = await list_counts.stored(engine, QUESTION_LIST_COUNTS)
    assert live[("all", "")] > 0
    assert {scope for scope, _ in live} == {"all", "status", "author", "author_status"}

    for env in delivered:
        topic = "member.events" if env.source == "member" else "qna.events"
        await send_envelope(infra.kafka_bootstrap, settings.topic(topic), env)
    report = await rebuild(
        engine,
        settings.kafka_connection(),
        [settings.topic(t) for t in READ_MODEL.topics],
        READ_MODEL,
        service="qna",
    )

    assert report.events_applied == len(delivered)
    await list_counts.assert_exact(engine, QUESTION_LIST_COUNTS, "after the rebuild")
    # the projector goes on with the swapped tables
    await list_counts.apply_each(engine, READ_MODEL, QUESTION_LIST_COUNTS, delivered[:10])


async def test_the_recount_repairs_every_counter_and_says_how_many(engine: AsyncEngine) -> None:
    author = uuid.uuid4()
    rows = [
        {
            "id": uuid.uuid4(),
            "title": f"질문 {n}",
            "author_id": author if n % 2 else None,
            "bounty": 0,
            "status": "OPEN" if n % 3 else "CLOSED",
            "deleted": n % 5 == 0,
            "version": 1,
            "created_at": T0,
            "updated_at": T0,
        }
        for n in range(30)
    ]
    async with engine.begin() as conn:  # loaded in bulk, as a benchmark seeds: no counter moves
        await conn.execute(insert(question_summaries), rows)
        # all, two statuses, the author, the author with each status
        assert await conn.scalar(text(RECOUNT_LIST_COUNTS)) == 6
    await list_counts.assert_exact(engine, QUESTION_LIST_COUNTS, "after the first recount")

    async with engine.begin() as conn:
        c = question_list_counts
        await conn.execute(update(c).where(c.c.scope == "status").values(live=c.c.live - 1))
        await conn.execute(insert(c).values(scope="author", key=str(uuid.uuid4()), live=2))
        assert await conn.scalar(text(RECOUNT_LIST_COUNTS)) == 3
        assert await conn.scalar(text(RECOUNT_LIST_COUNTS)) == 0  # idempotent
    await list_counts.assert_exact(engine, QUESTION_LIST_COUNTS, "after the repair")
