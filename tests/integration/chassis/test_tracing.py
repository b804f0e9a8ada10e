"""Distributed tracing: the trace started by a request continues through the outbox and Kafka to the consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork
from chassis.messaging.consumer import ConsumerRunner
from chassis.messaging.envelope import Envelope
from chassis.messaging.outbox import OutboxRelay
from chassis.messaging.topics import ensure_topics
from chassis.tracing import configure_tracing
from tests.support.infra import Infra, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def tracing_exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing for this test only: the library instrumentation is removed again afterwards,
    so later tests in this process send exactly the headers they write."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    exporter = InMemorySpanExporter()
    configure_tracing("chassis-tests", exporter=exporter)
    yield exporter
    HTTPXClientInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()


async def test_consumer_span_has_the_producer_span_trace_id(
    infra: Infra,
    topics: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    tracing_exporter: InMemorySpanExporter,
) -> None:
    exporter = tracing_exporter
    provider = configure_tracing("chassis-tests")
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)

    with trace.get_tracer("test").start_as_current_span("POST /widgets") as request_span:
        async with UnitOfWork(sessions, source="tests") as uow:
            await uow.publish("widget.events", "WidgetCreated", key="w", data={"widget_id": "w"})
            await uow.commit()
    request_trace = request_span.get_span_context().trace_id

    assert (
        await OutboxRelay(sessions, producer, service="t", topic_prefix=topics).publish_batch() == 1
    )
    seen: list[int] = []

    async def handler(env: Envelope) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    runner = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=f"{topics}tracing",
        handler=handler,
        producer=producer,
        service="t",
    )
    task = asyncio.create_task(runner.run())
    try:

        async def handled() -> bool:
            return bool(seen)

        await wait_for(handled, message="the event to be consumed")
    finally:
        await runner.stop()
        await task
    provider.force_flush()

    spans = exporter.get_finished_spans()
    publish = [s for s in spans if s.name == f"{topic} publish"]
    process = [s for s in spans if s.name == f"{topic} process"]
    assert len(publish) == 1
    assert len(process) == 1
    assert publish[0].context.trace_id == request_trace
    assert process[0].context.trace_id == publish[0].context.trace_id
    assert process[0].parent is not None
    assert process[0].parent.span_id == publish[0].context.span_id
    assert seen == [request_trace]
