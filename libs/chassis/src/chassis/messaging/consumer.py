"""Consumer runner: manual offset commits, bounded retries, then the dead-letter topic; never ack-and-forget.

A message's offset is committed only after its handler succeeded or the message was safely
written to ``<topic>.dlq`` (with the error in ``dlq_*`` headers). Handlers must be idempotent:
they record the event id in the inbox in the same transaction as their effect, because a crash
before the commit redelivers the message.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis.logging import get_logger
from chassis.messaging.connection import KafkaTarget, kafka_options
from chassis.messaging.envelope import (
    Envelope,
    MalformedMessage,
    from_consumer_record,
    headers_dict,
)
from chassis.messaging.producer import ProducerSource, resolve
from chassis.messaging.topics import dlq
from chassis.metrics import CONSUMER_LAG, DEAD_LETTERS, MESSAGES_HANDLED

log = get_logger("chassis.consumer")
tracer = trace.get_tracer("chassis.messaging")

Handler = Callable[[Envelope], Awaitable[None]]


class ConsumerRunner:
    """Consume ``topics`` in consumer group ``group_id`` and call ``handler`` for every envelope."""

    def __init__(
        self,
        *,
        kafka: KafkaTarget,
        topics: list[str],
        group_id: str,
        handler: Handler,
        producer: ProducerSource,
        service: str,
        max_attempts: int = 3,
        retry_backoff: float = 0.2,
        client_id: str | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.group_id = group_id
        self.handler = handler
        self._producer = producer
        self.service = service
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.client_id = client_id or f"{service}-{group_id}"
        self._stopping = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned = asyncio.Event()

    @property
    def producer(self) -> AIOKafkaProducer:
        return resolve(self._producer)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            **kafka_options(self.kafka),
            group_id=self.group_id,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=100,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        self.consumer = consumer
        await consumer.start()
        log.info("consumer.started", group=self.group_id, topics=self.topics)
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=100)
                if consumer.assignment():
                    self.assigned.set()
                for tp, records in batches.items():
                    for record in records:
                        if self._stopping.is_set():
                            break
                        await self._process(record)
                        await consumer.commit({tp: record.offset + 1})
                await self._report_lag(consumer)
        finally:
            await consumer.stop()  # leaves the group; offsets were committed per message
            log.info("consumer.stopped", group=self.group_id)

    async def stop(self) -> None:
        """Finish the message in hand, commit it, and leave the group."""
        self._stopping.set()

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = await consumer.position(tp)
            CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition), self.group_id).set(
                max(0, high - position)
            )

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        parent = propagate.extract(headers_dict(record.headers))
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.consumer.group": self.group_id,
                "messaging.kafka.message.offset": record.offset,
            },
        ) as span:
            try:
                envelope = from_consumer_record(record)
            except MalformedMessage as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                await self._dead_letter(record, exc, attempts=0)
                return
            for attempt in range(1, self.max_attempts + 1):
                try:
                    await self.handler(envelope)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "consumer.handler_failed",
                        topic=record.topic,
                        type=envelope.type,
                        event_id=envelope.id,
                        attempt=attempt,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    if attempt == self.max_attempts:
                        span.record_exception(exc)
                        span.set_status(Status(StatusCode.ERROR, str(exc)))
                        await self._dead_letter(record, exc, attempts=attempt)
                        return
                    await asyncio.sleep(self.retry_backoff * 2 ** (attempt - 1))
                else:
                    MESSAGES_HANDLED.labels(self.service, record.topic, "ok").inc()
                    return

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], exc: BaseException, attempts: int
    ) -> None:
        """Park the message with its error; the offset is committed only after the DLQ ack."""
        error = f"{type(exc).__name__}: {exc}"[:1000]
        headers = [
            *[(k, v) for k, v in (record.headers or []) if not k.startswith("dlq_")],
            ("dlq_error", error.encode()),
            ("dlq_stacktrace", "".join(traceback.format_exception(exc))[-4000:].encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self.group_id.encode()),
        ]
        await self.producer.send_and_wait(
            dlq(record.topic), value=record.value, key=record.key, headers=headers
        )
        DEAD_LETTERS.labels(self.service, record.topic).inc()
        MESSAGES_HANDLED.labels(self.service, record.topic, "dead_lettered").inc()
        log.error(
            "consumer.dead_lettered",
            topic=record.topic,
            offset=record.offset,
            dlq=dlq(record.topic),
            error=error,
        )


async def replay(
    kafka: KafkaTarget,
    topics: list[str],
    handler: Handler,
    *,
    idle_timeout: float = 2.0,
    start_offsets: Mapping[TopicPartition, int] | None = None,
) -> dict[TopicPartition, int]:
    """Read ``topics`` from the beginning up to today's end offsets (no consumer group) and call
    ``handler`` for each envelope. Used to rebuild read models; returns the end offsets reached.

    ``start_offsets`` (e.g. the end offsets a previous call returned) resumes those partitions
    there instead of at the beginning: a rebuild catches up with what arrived meanwhile."""
    consumer = AIOKafkaConsumer(
        **kafka_options(kafka),
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or [])
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(t, p)
                for t in topics
                for p in sorted(consumer.partitions_for_topic(t) or [])
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        start = dict(start_offsets or {})
        for tp in partitions:
            if start.get(tp, 0) > 0:
                consumer.seek(tp, start[tp])
        end: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > start.get(tp, 0)}
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        while remaining:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    try:
                        env = from_consumer_record(record)
                    except MalformedMessage:
                        continue
                    await handler(env)
                    last_progress = loop.time()
                if tp in remaining and await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if remaining and loop.time() - last_progress > max(idle_timeout, 30.0):
                raise TimeoutError(f"replay stalled on {sorted(map(str, remaining))}")
        return end
    finally:
        await consumer.stop()
