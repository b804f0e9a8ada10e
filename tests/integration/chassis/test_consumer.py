"""Idempotent consumer and dead letters: duplicates change nothing; a poison message is parked, not lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork
from chassis.messaging.consumer import ConsumerRunner
from chassis.messaging.envelope import Envelope, headers_dict
from chassis.messaging.topics import ensure_topics
from tests.integration.chassis.scratch import increment, widget_count, widgets
from tests.support.infra import Infra, wait_for
from tests.support.kafka import read_topic, send_envelope

pytestmark = pytest.mark.integration


@asynccontextmanager
async def running(runner: ConsumerRunner) -> AsyncIterator[ConsumerRunner]:
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        await runner.stop()
        await asyncio.wait_for(task, 30)


def counting_handler(
    sessions: async_sessionmaker[AsyncSession],
) -> Callable[[Envelope], Awaitable[None]]:
    async def handle(env: Envelope) -> None:
        async with UnitOfWork(sessions, source="consumer") as uow:
            if await uow.first_delivery("widget-counter", env.id):
                await uow.session.execute(increment(env.data["widget_id"]))
            await uow.commit()

    return handle


async def test_the_same_event_delivered_twice_changes_the_effect_once(
    infra: Infra,
    topics: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    engine: AsyncEngine,
) -> None:
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    async with engine.begin() as conn:
        await conn.execute(widgets.insert().values(id="w", count=0))
    event = Envelope.new("WidgetTouched", "tests", {"widget_id": "w"}, key="w")
    other = Envelope.new("WidgetTouched", "tests", {"widget_id": "w"}, key="w")
    for env in (event, event, other, event):
        await send_envelope(infra.kafka_bootstrap, topic, env)

    runner = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=f"{topics}counter",
        handler=counting_handler(sessions),
        producer=producer,
        service="chassis-tests",
    )
    async with running(runner):

        async def all_consumed() -> bool:
            lag_free = runner.consumer is not None and runner.consumer.assignment()
            return bool(lag_free) and await widget_count(engine, "w") == 2

        await wait_for(all_consumed, message="both distinct events applied")
        await asyncio.sleep(0.5)  # let the trailing duplicate arrive too
    assert await widget_count(engine, "w") == 2  # 4 deliveries, 2 distinct events


async def test_a_poison_message_goes_to_the_dlq_after_bounded_retries_and_the_next_is_handled(
    infra: Infra,
    topics: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    engine: AsyncEngine,
) -> None:
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    async with engine.begin() as conn:
        await conn.execute(widgets.insert().values(id="ok", count=0))
    attempts: list[str] = []
    good = counting_handler(sessions)

    async def handler(env: Envelope) -> None:
        if env.type == "Poison":
            attempts.append(env.id)
            raise RuntimeError("cannot digest this")
        await good(env)

    poison = Envelope.new("Poison", "tests", {"widget_id": "none"}, key="p")
    await send_envelope(infra.kafka_bootstrap, topic, poison)
    await send_envelope(
        infra.kafka_bootstrap,
        topic,
        Envelope.new("WidgetTouched", "tests", {"widget_id": "ok"}, key="ok"),
    )
    runner = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=f"{topics}dlq-test",
        handler=handler,
        producer=producer,
        service="chassis-tests",
        max_attempts=3,
        retry_backoff=0.01,
    )
    async with running(runner):

        async def next_handled() -> bool:
            return await widget_count(engine, "ok") == 1

        await wait_for(next_handled, message="the message after the poison one")

    assert attempts == [poison.id] * 3
    parked = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", min_count=1)
    assert len(parked) == 1
    h = headers_dict(parked[0].headers)
    assert h["ce_id"] == poison.id
    assert h["dlq_attempts"] == "3"
    assert "cannot digest this" in h["dlq_error"]
    assert h["dlq_original_topic"] == topic


async def test_a_record_that_is_not_a_cloudevent_is_dead_lettered_without_retries(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    await producer.send_and_wait(topic, value=b"\xff not json", key=b"k")
    calls: list[str] = []

    async def handler(env: Envelope) -> None:
        calls.append(env.id)

    runner = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=f"{topics}malformed-{uuid.uuid4().hex[:6]}",
        handler=handler,
        producer=producer,
        service="chassis-tests",
    )
    async with running(runner):
        parked = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", min_count=1)
    assert calls == []
    assert headers_dict(parked[0].headers)["dlq_attempts"] == "0"
