"""Transactional outbox relay: publishes committed outbox rows to Kafka, in order, at least once.

Rows are written by ``UnitOfWork.publish`` in the same transaction as the state change, so an
event exists if and only if its change was committed. The relay reads unpublished rows in
``seq`` order under a transaction-scoped advisory lock (one active relay per database keeps
per-aggregate order even with several worker replicas), sends them with the idempotent
producer, waits for every ack, and only then marks them published. A crash between the send
and the mark re-sends the batch: consumers deduplicate by event id (the inbox).

The relay waits on PostgreSQL ``LISTEN``: the committing transaction's ``NOTIFY`` wakes it, so
an idle relay costs nothing but its safety poll (``poll_seconds``, seconds apart, for a
notification that never came). When the LISTEN connection is lost, its termination wakes the
relay, which listens again on a new connection and publishes at once whatever was committed
meanwhile: no row waits for the safety poll after a reconnect. Housekeeping (the backlog gauge
and the deletion of old published rows) runs on a slower clock of its own.

During a database or broker outage the relay neither dies nor spins: a failed batch rolls back
(its rows stay unpublished), the relay waits a capped, growing backoff, reconnects its LISTEN
and tries again, logging the outage once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import OUTBOX_CHANNEL, outbox_table, utcnow
from chassis.logging import get_logger
from chassis.messaging.envelope import Envelope, to_kafka
from chassis.messaging.failures import Backoff, Outage
from chassis.messaging.producer import ProducerSource, resolve
from chassis.metrics import OUTBOX_PENDING, OUTBOX_PUBLISHED

log = get_logger("chassis.outbox")
tracer = trace.get_tracer("chassis.messaging")


def _lock_id(service: str) -> int:
    return zlib.crc32(f"outbox-relay:{service}".encode())


class _Listening:
    """The state of one LISTEN connection: ``lost`` once the server or the network closed it."""

    def __init__(self) -> None:
        self.lost = False


class OutboxRelay:
    """Background loop; ``stop()`` lets the current batch finish and flushes the producer.

    ``poll_seconds`` is the safety poll between two batches when no ``NOTIFY`` arrives (e.g. a
    LISTEN connection that died silently); ``housekeeping_seconds`` the period of the backlog
    gauge and of the deletion of rows published longer than ``retention`` ago.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        producer: ProducerSource,
        *,
        service: str,
        topic_prefix: str = "",
        poll_seconds: float = 5.0,
        housekeeping_seconds: float = 30.0,
        batch_size: int = 100,
        retention: dt.timedelta = dt.timedelta(hours=24),
        backoff: Backoff | None = None,
    ) -> None:
        self.session_factory = session_factory
        self._producer = producer
        self.service = service
        self.topic_prefix = topic_prefix
        self.poll_seconds = poll_seconds
        self.housekeeping_seconds = housekeeping_seconds
        self.batch_size = batch_size
        self.retention = retention
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._next_housekeeping = 0.0
        self.outage = Outage("outbox relay", backoff or Backoff(initial=0.1, cap=10.0), log)

    @property
    def producer(self) -> AIOKafkaProducer:
        return resolve(self._producer)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._relay()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # the batch rolled back: its rows are still unpublished and go in the next one
                delay = self.outage.failed(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        await self.producer.flush()
        log.info("outbox.relay_stopped", service=self.service)

    async def _relay(self) -> None:
        """Publish batches until stopped; raises when the database or the broker fails."""
        while not self._stopping.is_set():
            async with self._notifications() as listening:
                await self._relay_while_listening(listening)
            if listening.lost and not self._stopping.is_set():
                # listen again at once; the first batch on the new connection publishes what
                # was committed while nobody listened (a failed reconnect backs off in run())
                log.info("outbox.listen_lost", service=self.service)

    async def _relay_while_listening(self, listening: _Listening) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set() and not listening.lost:
            self._wake.clear()
            sent = await self.publish_batch()
            self.outage.succeeded()
            if loop.time() >= self._next_housekeeping:
                await self._housekeeping()
                self._next_housekeeping = loop.time() + self.housekeeping_seconds
            if sent < self.batch_size and not listening.lost:
                # A commit that staged events wakes us at once, and so does the loss of the
                # LISTEN connection; the poll is the safety net for a notification never sent.
                wait = min(self.poll_seconds, max(0.0, self._next_housekeeping - loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @contextlib.asynccontextmanager
    async def _notifications(self) -> AsyncIterator[_Listening]:
        """LISTEN on the channel ``UnitOfWork.publish`` notifies (delivered at commit); the
        yielded state turns ``lost`` (and the relay wakes) when that connection terminates."""
        listening = _Listening()
        engine: AsyncEngine | None = self.session_factory.kw.get("bind")
        if engine is None or engine.dialect.driver != "asyncpg":
            yield listening
            return
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None

            def wake(*_: object) -> None:
                self._wake.set()

            def lost(*_: object) -> None:
                listening.lost = True
                self._wake.set()

            driver.add_termination_listener(lost)
            await driver.add_listener(OUTBOX_CHANNEL, wake)
            try:
                yield listening
            finally:
                driver.remove_termination_listener(lost)
                if listening.lost:
                    # a dead connection goes back to no pool
                    with contextlib.suppress(Exception):
                        await conn.invalidate()
                else:
                    with contextlib.suppress(Exception):
                        await driver.remove_listener(OUTBOX_CHANNEL, wake)

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self.session_factory() as session, session.begin():
            locked = await session.scalar(
                select(func.pg_try_advisory_xact_lock(_lock_id(self.service)))
            )
            if not locked:
                return 0
            rows = (
                await session.execute(
                    select(outbox_table)
                    .where(outbox_table.c.published_at.is_(None))
                    .order_by(outbox_table.c.seq)
                    .limit(self.batch_size)
                )
            ).all()
            if not rows:
                return 0
            await self._send_all(rows)
            await session.execute(
                update(outbox_table)
                .where(outbox_table.c.id.in_([r.id for r in rows]))
                .values(published_at=utcnow())
            )
        for r in rows:
            OUTBOX_PUBLISHED.labels(self.service, r.topic).inc()
        return len(rows)

    async def _send_all(self, rows: Sequence[Row[Any]]) -> None:
        futures = []
        for row in rows:
            topic = f"{self.topic_prefix}{row.topic}"
            parent = propagate.extract(dict(row.headers or {}))
            with tracer.start_as_current_span(
                f"{topic} publish",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "messaging.message.id": str(row.id),
                },
            ):
                extensions = {
                    k: str(v)
                    for k, v in (row.headers or {}).items()
                    if k not in ("traceparent", "tracestate")
                }
                propagate.inject(extensions)
                key, value, headers = to_kafka(
                    Envelope(
                        id=str(row.id),
                        type=row.type,
                        source=row.source,
                        data=row.payload,
                        subject=row.subject,
                        time=row.occurred_at,
                        key=row.key,
                        extensions=extensions,
                    )
                )
                futures.append(
                    await self.producer.send(topic, value=value, key=key, headers=headers)
                )
        await asyncio.gather(*futures)

    async def _housekeeping(self) -> None:
        """Report the backlog and delete rows published longer ago than the retention."""
        try:
            async with self.session_factory() as session, session.begin():
                pending = await session.scalar(
                    select(func.count())
                    .select_from(outbox_table)
                    .where(outbox_table.c.published_at.is_(None))
                )
                OUTBOX_PENDING.labels(self.service).set(pending or 0)
                await session.execute(
                    delete(outbox_table).where(
                        outbox_table.c.published_at < utcnow() - self.retention
                    )
                )
        except Exception:
            log.exception("outbox.housekeeping_failed")
