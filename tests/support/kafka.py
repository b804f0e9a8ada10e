"""Kafka helpers for tests: read what is on a topic, publish a raw envelope, run a consumer for a block."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from chassis.messaging.consumer import ConsumerRunner
from chassis.messaging.envelope import Envelope, to_kafka

if TYPE_CHECKING:
    from tests.support.infra import Infra


async def read_topic(
    bootstrap: str, topic: str, *, min_count: int = 0, timeout: float = 15.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` from the beginning; waits until at least ``min_count`` exist."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            if not parts:
                await consumer._client.force_metadata_update()
                parts = [
                    TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []
                ]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            end = await consumer.end_offsets(parts)
            records: list[ConsumerRecord[bytes, bytes]] = []
            while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
            if len(records) >= min_count or loop.time() > deadline:
                return records
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


async def send_envelope(bootstrap: str, topic: str, envelope: Envelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        key, value, headers = to_kafka(envelope)
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (a test's own topics).

    Best effort: a test's result must not depend on its clean-up, so a broker that is down or
    slow to answer is logged by pytest's warning and otherwise ignored."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-topic-cleanup")
    try:
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names, timeout_ms=10_000)
        finally:
            await admin.close()
    except Exception as exc:  # clean-up only: the test has its verdict already
        warnings.warn(f"topics under {prefix!r} not deleted: {exc}", stacklevel=1)


def runner_for(
    infra: Infra,
    topic: str,
    group: str,
    handler: Callable[[Envelope], Awaitable[None]],
    producer: AIOKafkaProducer,
    **kw: Any,
) -> ConsumerRunner:
    """A ``ConsumerRunner`` of one topic on the test infrastructure's broker (``kw``: its other
    settings, e.g. ``max_attempts``)."""
    return ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=group,
        handler=handler,
        producer=producer,
        service="chassis-tests",
        **kw,
    )


@asynccontextmanager
async def running(
    runner: ConsumerRunner, *, assigned: bool = False
) -> AsyncIterator[asyncio.Task[None]]:
    """``runner`` consuming in a task for the block (from its first partition assignment on,
    within 60 s, when ``assigned``); stopped, and its task awaited (30 s), on the way out."""
    task = asyncio.create_task(runner.run())
    try:
        if assigned:
            await asyncio.wait_for(runner.assigned.wait(), 60)
        yield task
    finally:
        await runner.stop()
        await asyncio.wait_for(task, 30)
