"""Idempotent consumer and dead letters: duplicates change nothing; a message that can never succeed is parked, not lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork
from chassis.messaging.consumer import ConsumerRunner
from chassis.messaging.envelope import Envelope, headers_dict
from chassis.messaging.failures import PermanentFailure
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
        probe=database_probe(engine),  # healthy: the error is the message's, not an outage
    )
    async with running(runner):

        async def next_handled() -> bool:
            return await widget_count(engine, "ok") == 1

        await wait_for(next_handled, message="the message after the poison one")

    # max_attempts tries, a healthy probe, one more try, a healthy probe again
    assert attempts == [poison.id] * 4
    parked = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", min_count=1)
    assert len(parked) == 1
    h = headers_dict(parked[0].headers)
    assert h["ce_id"] == poison.id
    assert h["dlq_attempts"] == "4"
    assert h["dlq_reason"] == "exhausted"
    assert "cannot digest this" in h["dlq_error"]
    assert h["dlq_original_topic"] == topic


def database_probe(engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return probe


class WidgetTouched(BaseModel):
    widget_id: str
    count: int


async def test_a_permanent_failure_is_dead_lettered_at_once_and_the_next_is_handled(
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
    calls: list[str] = []
    good = counting_handler(sessions)

    async def handler(env: Envelope) -> None:
        calls.append(env.type)
        if env.type == "Refused":
            raise PermanentFailure("this widget can never be touched")
        WidgetTouched.model_validate(env.data)  # a schema error is permanent too
        await good(env)

    for env in (
        Envelope.new("Refused", "tests", {"widget_id": "ok"}, key="ok"),
        Envelope.new("WidgetTouched", "tests", {"widget_id": "ok"}, key="ok"),  # no count
        Envelope.new("WidgetTouched", "tests", {"widget_id": "ok", "count": 1}, key="ok"),
    ):
        await send_envelope(infra.kafka_bootstrap, topic, env)
    runner = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=f"{topics}permanent",
        handler=handler,
        producer=producer,
        service="chassis-tests",
        max_attempts=3,
        retry_backoff=0.01,
    )
    async with running(runner):
        await wait_for(lambda: _count_is(engine, "ok", 1), message="the valid message handled")
    assert calls == ["Refused", "WidgetTouched", "WidgetTouched"]  # one try each
    parked = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", min_count=2)
    reasons = [headers_dict(r.headers)["dlq_reason"] for r in parked]
    assert reasons == ["permanent", "permanent"]
    assert "ValidationError" in headers_dict(parked[1].headers)["dlq_error"]


class FlakyDlqProducer:
    """A real producer whose first ``failures`` sends fail as if the broker were unreachable."""

    def __init__(self, inner: AIOKafkaProducer, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.sends = 0

    async def send_and_wait(self, topic: str, **kwargs: Any) -> object:
        self.sends += 1
        if self.sends <= self.failures:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]")
        return await self.inner.send_and_wait(topic, **kwargs)


async def test_a_dlq_publish_that_fails_is_retried_the_message_neither_skipped_nor_doubled(
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
    good = counting_handler(sessions)
    tries: list[str] = []

    async def handler(env: Envelope) -> None:
        if env.type == "Refused":
            tries.append(env.id)
            raise PermanentFailure("never")
        await good(env)

    refused = Envelope.new("Refused", "tests", {}, key="ok")
    await send_envelope(infra.kafka_bootstrap, topic, refused)
    await send_envelope(
        infra.kafka_bootstrap,
        topic,
        Envelope.new("WidgetTouched", "tests", {"widget_id": "ok"}, key="ok"),
    )
    flaky = FlakyDlqProducer(producer, failures=2)
    runner = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=f"{topics}flaky-dlq",
        handler=handler,
        producer=lambda: flaky,  # only send_and_wait is used for the DLQ
        service="chassis-tests",
        retry_backoff=0.05,
    )
    async with running(runner):
        await wait_for(lambda: _count_is(engine, "ok", 1), message="the next message handled")
    assert flaky.sends == 3
    assert tries == [refused.id]  # the decision was kept; the handler did not run again
    parked = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", min_count=1)
    assert [headers_dict(r.headers)["ce_id"] for r in parked] == [refused.id]


async def _count_is(engine: AsyncEngine, widget_id: str, n: int) -> bool:
    return await widget_count(engine, widget_id) == n


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
    assert headers_dict(parked[0].headers)["dlq_reason"] == "permanent"


async def test_a_partition_revoked_while_its_handler_runs_does_not_crash_the_consumer(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    """The handler fails after a rebalance gave its partition to another member: the old owner
    must not pause or rewind a partition it no longer has (aiokafka raises IllegalStateError),
    and the new owner handles the message."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    group = f"{topics}rebalance"
    env = Envelope.new("WidgetTouched", "tests", {"widget_id": "w"}, key="w")
    await send_envelope(infra.kafka_bootstrap, topic, env)
    handled_by: list[str] = []
    in_handler = asyncio.Event()
    newcomer: ConsumerRunner | None = None

    async def first(_: Envelope) -> None:
        in_handler.set()

        async def taken_over() -> bool:
            return newcomer is not None and bool(
                newcomer.consumer and newcomer.consumer.assignment()
            )

        await wait_for(taken_over, timeout=40, message="the partition moved to the newcomer")
        raise ConnectionRefusedError(111, "Connect call failed")  # fails only now

    async def second(_: Envelope) -> None:
        handled_by.append("newcomer")

    # the range assignor gives the single partition to the lowest member id: the newcomer's
    original = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=group,
        handler=first,
        producer=producer,
        service="chassis-tests",
        client_id="zz-original",
    )
    task = asyncio.create_task(original.run())
    try:
        await asyncio.wait_for(in_handler.wait(), 30)
        newcomer = ConsumerRunner(
            kafka=infra.kafka_bootstrap,
            topics=[topic],
            group_id=group,
            handler=second,
            producer=producer,
            service="chassis-tests",
            client_id="aa-newcomer",
        )
        async with running(newcomer):

            async def handled() -> bool:
                return handled_by == ["newcomer"]

            await wait_for(handled, timeout=40, message="the message handled by its new owner")
            await asyncio.sleep(1.0)  # the original's failure is handled by now
            assert not task.done(), task.exception() if task.done() else None
    finally:
        await original.stop()
        await asyncio.wait_for(task, 30)
    assert await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", timeout=1) == []
