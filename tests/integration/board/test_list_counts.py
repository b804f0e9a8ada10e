"""The post lists' counters (post_list_counts) equal count(*) of the summaries after any event sequence, a rebuild and a recount (issue 15, P6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from board.adapters.tables import (
    POST_LIST_COUNTS,
    RECOUNT_LIST_COUNTS,
    post_list_counts,
    post_summaries,
)
from board.config import SERVICE_ROOT, Settings
from board.service_layer.projector import READ_MODEL
from chassis.db import create_engine
from chassis.messaging.envelope import Envelope
from chassis.migrations import upgrade
from chassis.read_model import rebuild
from tests.support import list_counts, projections
from tests.support.infra import Infra, wait_for
from tests.support.kafka import send_envelope

pytestmark = pytest.mark.integration

SEEDS = (11, 12, 13)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)
    engine = create_engine(database_url)
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
    """Posts on three boards by four members: each created, edited (some moved to another
    board, some anonymized), some deleted, with comments; two members withdraw."""
    boards = [uuid.uuid4() for _ in range(3)]
    members = [uuid.uuid4() for _ in range(4)]
    events = [
        _event("MemberRegistered", "member", m, member_id=m, nickname=f"회원{i}", profile_version=1)
        for i, m in enumerate(members)
    ]
    for n in range(24):
        post, board = uuid.uuid4(), rng.choice(boards)
        author: uuid.UUID | None = rng.choice(members)
        at = T0 + dt.timedelta(minutes=n)
        events.append(
            _event(
                "PostCreated",
                "board",
                post,
                post_id=post,
                board_id=board,
                author_id=author,
                title=f"글 {n}",
                created_at=at,
                version=1,
            )
        )
        version = 1
        for _ in range(rng.randrange(3)):
            version += 1
            board = rng.choice(boards) if rng.random() < 0.3 else board
            author = None if rng.random() < 0.2 else author
            events.append(
                _event(
                    "PostUpdated",
                    "board",
                    post,
                    post_id=post,
                    board_id=board,
                    author_id=author,
                    title=f"글 {n} v{version}",
                    updated_at=at + dt.timedelta(seconds=version),
                    version=version,
                )
            )
        for _ in range(rng.randrange(2)):
            events.append(
                _event("CommentAdded", "board", post, post_id=post, comment_id=uuid.uuid4())
            )
        if rng.random() < 0.35:
            events.append(
                _event(
                    "PostDeleted",
                    "board",
                    post,
                    post_id=post,
                    board_id=board,
                    author_id=author,
                    version=version + 1,
                )
            )
    events += [_event("MemberWithdrawn", "member", m, member_id=m) for m in members[:2]]
    return events


async def _produce(infra: Infra, settings: Settings, events: list[Envelope]) -> None:
    for env in events:
        topic = "member.events" if env.source == "member" else "board.events"
        await send_envelope(infra.kafka_bootstrap, settings.topic(topic), env)


@pytest.mark.parametrize("seed", SEEDS)
async def test_the_counters_equal_count_star_after_any_delivery_and_a_rebuild(
    engine: AsyncEngine, database_url: str, infra: Infra, topics: str, seed: int
) -> None:
    rng = random.Random(seed)
    # shuffled: versions out of order, a deletion before its creation; redelivered twice over
    delivered = projections.shuffled_with_duplicates(_history(rng), seed, duplicates=20)
    await list_counts.apply_each(engine, READ_MODEL, POST_LIST_COUNTS, delivered)
    live = await list_counts.stored(engine, POST_LIST_COUNTS)
    assert live[("all", "")] > 0
    assert any(scope == "author" for scope, _ in live)

    settings = Settings(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=topics,
    )
    await _produce(infra, settings, delivered)
    report = await rebuild(
        engine,
        settings.kafka_connection(),
        [settings.topic(t) for t in READ_MODEL.topics],
        READ_MODEL,
        service="board",
    )

    assert report.events_applied == len(delivered)
    # (not equal to ``live`` as such: the replay interleaves the two topics its own way)
    await list_counts.assert_exact(engine, POST_LIST_COUNTS, "after the rebuild")
    # the projector goes on with the swapped tables
    await list_counts.apply_each(engine, READ_MODEL, POST_LIST_COUNTS, delivered[:10])


async def test_the_recount_repairs_every_counter_and_says_how_many(engine: AsyncEngine) -> None:
    board, other, author = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rows = [
        {
            "post_id": uuid.uuid4(),
            "board_id": board if n % 3 else other,
            "title": f"글 {n}",
            "author_id": author if n % 2 else None,
            "author_nickname": "회원",
            "created_at": T0,
            "updated_at": T0,
            "version": 1,
            "deleted": n % 5 == 0,
        }
        for n in range(30)
    ]
    async with engine.begin() as conn:  # loaded in bulk, as a benchmark seeds: no counter moves
        await conn.execute(insert(post_summaries), rows)
        assert await conn.scalar(text(RECOUNT_LIST_COUNTS)) == 4  # all, two boards, the author
    await list_counts.assert_exact(engine, POST_LIST_COUNTS, "after the first recount")

    async with engine.begin() as conn:  # drift of every kind: wrong, missing, and stray rows
        c = post_list_counts
        await conn.execute(update(c).where(c.c.scope == "all").values(live=c.c.live + 7))
        await conn.execute(delete(c).where(c.c.key == str(author)))
        await conn.execute(insert(c).values(scope="board", key=str(uuid.uuid4()), live=3))
        await conn.execute(insert(c).values(scope="board", key=str(uuid.uuid4()), live=0))
        assert await conn.scalar(text(RECOUNT_LIST_COUNTS)) == 3
        assert await conn.scalar(text(RECOUNT_LIST_COUNTS)) == 0  # idempotent
    await list_counts.assert_exact(engine, POST_LIST_COUNTS, "after the repair")


async def _apply(engine: AsyncEngine, env: Envelope) -> None:
    async with async_sessionmaker(engine)() as session, session.begin():
        await READ_MODEL.apply(session, READ_MODEL.live, env)


async def _someone_waits_for_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def test_a_deletion_racing_its_authors_withdrawal_counts_once(engine: AsyncEngine) -> None:
    """The withdrawal (every summary of the member, no per-post lock) and the post's deletion
    each change the row the other reads: the deletion must see the row as the withdrawal left
    it, or the author's counter is decremented twice."""
    author, board, post = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    created = _event(
        "PostCreated",
        "board",
        post,
        post_id=post,
        board_id=board,
        author_id=author,
        title="글",
        created_at=T0,
        version=1,
    )
    await _apply(engine, created)
    withdrawal = async_sessionmaker(engine)()
    async with withdrawal, withdrawal.begin():
        await READ_MODEL.apply(
            withdrawal,
            READ_MODEL.live,
            _event("MemberWithdrawn", "member", author, member_id=author),
        )
        deleted = _event(
            "PostDeleted", "board", post, post_id=post, board_id=board, author_id=author, version=2
        )
        deleting = asyncio.create_task(_apply(engine, deleted))
        await wait_for(lambda: _someone_waits_for_a_lock(engine), message="the deletion to wait")
        assert not deleting.done()
    await asyncio.wait_for(deleting, 30)

    await list_counts.assert_exact(engine, POST_LIST_COUNTS, "after the race")
    assert await list_counts.stored(engine, POST_LIST_COUNTS) == {}
