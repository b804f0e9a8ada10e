"""Transactional outbox: an event committed with its state change is published once, even after a crash."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork, outbox_table
from chassis.messaging.envelope import headers_dict
from chassis.messaging.outbox import OutboxRelay
from tests.integration.chassis.scratch import widgets
from tests.support.infra import REPO, Infra, wait_for
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


async def _stage_event(sessions: async_sessionmaker[AsyncSession], widget_id: str) -> uuid.UUID:
    async with UnitOfWork(sessions, source="chassis-tests") as uow:
        await uow.session.execute(widgets.insert().values(id=widget_id, count=0))
        event_id = await uow.publish(
            "widget.events", "WidgetCreated", key=widget_id, data={"widget_id": widget_id}
        )
        await uow.commit()
    return event_id


async def test_committed_event_is_published_exactly_once(
    infra: Infra,
    topics: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    engine: AsyncEngine,
) -> None:
    from chassis.messaging.topics import ensure_topics

    await ensure_topics(infra.kafka_bootstrap, [f"{topics}widget.events"], partitions=1)
    widget_id = uuid.uuid4().hex
    event_id = await _stage_event(sessions, widget_id)
    relay = OutboxRelay(sessions, producer, service="chassis-tests", topic_prefix=topics)

    assert await relay.publish_batch() == 1
    assert await relay.publish_batch() == 0  # already marked published

    records = await read_topic(infra.kafka_bootstrap, f"{topics}widget.events", min_count=1)
    assert len(records) == 1
    headers = headers_dict(records[0].headers)
    assert headers["ce_id"] == str(event_id)
    assert headers["ce_type"] == "WidgetCreated"
    assert headers["ce_specversion"] == "1.0"
    assert records[0].key == widget_id.encode()
    async with engine.connect() as conn:
        unpublished = await conn.scalar(
            select(func.count())
            .select_from(outbox_table)
            .where(outbox_table.c.published_at.is_(None))
        )
    assert unpublished == 0


async def test_rolled_back_change_publishes_nothing(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    async with UnitOfWork(sessions, source="chassis-tests") as uow:
        await uow.session.execute(widgets.insert().values(id="rolled-back", count=0))
        await uow.publish("widget.events", "WidgetCreated", key="rolled-back", data={})
        # no commit: leaving the block rolls back
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(outbox_table)) == 0
        assert await conn.scalar(select(func.count()).select_from(widgets)) == 0


_CRASH_AFTER_COMMIT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from chassis.db import UnitOfWork, create_engine, create_session_factory
    from tests.integration.chassis.scratch import widgets

    async def main() -> None:
        engine = create_engine(sys.argv[1])
        async with UnitOfWork(create_session_factory(engine), source="chassis-tests") as uow:
            await uow.session.execute(widgets.insert().values(id=sys.argv[2], count=0))
            await uow.publish("widget.events", "WidgetCreated", key=sys.argv[2], data={})
            await uow.commit()
        os.kill(os.getpid(), signal.SIGKILL)  # dies between the commit and any publish

    asyncio.run(main())
    """
)

_CRASH_AFTER_SEND = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from sqlalchemy import select
    from chassis.db import create_engine, create_session_factory, outbox_table
    from chassis.messaging.outbox import OutboxRelay
    from chassis.messaging.producer import create_producer

    async def main() -> None:
        engine = create_engine(sys.argv[1])
        producer = create_producer(sys.argv[2], "crashing-relay")
        await producer.start()
        relay = OutboxRelay(create_session_factory(engine), producer, service="t", topic_prefix=sys.argv[3])
        async with engine.connect() as conn:
            rows = (await conn.execute(select(outbox_table).order_by(outbox_table.c.seq))).all()
        await relay._send_all(rows)  # acked by Kafka ...
        os.kill(os.getpid(), signal.SIGKILL)  # ... but never marked published

    asyncio.run(main())
    """
)


def _run(script: str, *args: str) -> int:
    return subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, timeout=60).returncode


async def test_crash_between_commit_and_publish_loses_nothing(
    infra: Infra,
    topics: str,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
) -> None:
    from chassis.messaging.topics import ensure_topics

    await ensure_topics(infra.kafka_bootstrap, [f"{topics}widget.events"], partitions=1)
    code = await asyncio.to_thread(_run, _CRASH_AFTER_COMMIT, database_url, "w1")
    assert code == -9  # really killed

    relay = OutboxRelay(sessions, producer, service="chassis-tests", topic_prefix=topics)
    assert await relay.publish_batch() == 1  # the restarted relay finds the committed event
    records = await read_topic(infra.kafka_bootstrap, f"{topics}widget.events", min_count=1)
    assert [r.key for r in records] == [b"w1"]


async def test_crash_after_send_republishes_and_the_inbox_absorbs_the_duplicate(
    infra: Infra,
    topics: str,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    engine: AsyncEngine,
) -> None:
    from chassis.messaging.topics import ensure_topics

    await ensure_topics(infra.kafka_bootstrap, [f"{topics}widget.events"], partitions=1)
    event_id = await _stage_event(sessions, "w2")
    code = await asyncio.to_thread(
        _run, _CRASH_AFTER_SEND, database_url, infra.kafka_bootstrap, topics
    )
    assert code == -9

    relay = OutboxRelay(sessions, producer, service="chassis-tests", topic_prefix=topics)
    assert await relay.publish_batch() == 1
    records = await read_topic(infra.kafka_bootstrap, f"{topics}widget.events", min_count=2)
    ids = [headers_dict(r.headers)["ce_id"] for r in records]
    assert ids == [str(event_id), str(event_id)]  # at-least-once on the wire ...

    for _ in records:  # ... exactly-once in effect, through the inbox
        async with UnitOfWork(sessions, source="consumer") as uow:
            if await uow.first_delivery("widget-counter", str(event_id)):
                await uow.session.execute(
                    widgets.update().where(widgets.c.id == "w2").values(count=widgets.c.count + 1)
                )
            await uow.commit()
    async with engine.connect() as conn:
        assert await conn.scalar(select(widgets.c.count).where(widgets.c.id == "w2")) == 1


async def test_a_commit_wakes_the_relay_without_waiting_for_its_poll(
    infra: Infra,
    topics: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    engine: AsyncEngine,
) -> None:
    from chassis.messaging.topics import ensure_topics

    await ensure_topics(infra.kafka_bootstrap, [f"{topics}widget.events"], partitions=1)
    relay = OutboxRelay(
        sessions, producer, service="chassis-tests", topic_prefix=topics, poll_seconds=60
    )
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the relay has polled once and now waits (up to 60 s)
        await _stage_event(sessions, "w3")

        async def published() -> bool:
            async with engine.connect() as conn:
                pending = await conn.scalar(
                    select(func.count())
                    .select_from(outbox_table)
                    .where(outbox_table.c.published_at.is_(None))
                )
            return pending == 0

        await wait_for(published, timeout=10, message="the NOTIFY to wake the relay")
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)
