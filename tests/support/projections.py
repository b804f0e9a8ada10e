"""Test support for read-model convergence: event histories from the outbox, shuffled and duplicated deliveries, dead letters and their replay."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import cli
from chassis.db import outbox_table
from chassis.messaging.envelope import Envelope, to_kafka


async def outbox_events(engine: AsyncEngine) -> list[Envelope]:
    """Every event the service staged in its outbox, in insert (``seq``) order, as the relay would
    publish them (same id, type, body and time; no offset, so no checkpoint is involved)."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox_table).order_by(outbox_table.c.seq))
        return [
            Envelope(
                id=str(r.id),
                type=r.type,
                source=r.source,
                data=dict(r.payload),
                subject=r.subject,
                time=r.occurred_at,
                key=r.key,
                topic=r.topic,
            )
            for r in rows
        ]


def shuffled_with_duplicates(
    events: Sequence[Envelope], seed: int, *, duplicates: int = 6
) -> list[Envelope]:
    """``events`` in a seeded random order, plus ``duplicates`` redeliveries under the same id
    (the inbox drops them) and ``duplicates`` under a new id (a re-publish the inbox cannot
    recognise: only the projection's own rules keep it harmless)."""
    rng = random.Random(seed)
    out = list(events)
    out += rng.sample(list(events), min(duplicates, len(events)))
    out += [
        dataclasses.replace(e, id=str(uuid.uuid4()))
        for e in rng.sample(list(events), min(duplicates, len(events)))
    ]
    rng.shuffle(out)
    return out


async def rows(engine: AsyncEngine, table: Table, *order_by: str) -> list[dict[str, Any]]:
    """Every row of ``table`` as a dict, in a stable order."""
    async with engine.connect() as conn:
        result = await conn.execute(select(table).order_by(*(table.c[c] for c in order_by)))
        return [dict(r._mapping) for r in result]


async def produce(producer: AIOKafkaProducer, topic: str, env: Envelope) -> None:
    """Publish ``env`` to the physical ``topic`` as the outbox relay does, and wait for the ack."""
    key, value, headers = to_kafka(env)
    await producer.send_and_wait(topic, value=value, key=key, headers=headers)


async def dead_letter(
    producer: AIOKafkaProducer, topic: str, env: Envelope, *, group: str, offset: int
) -> None:
    """Park ``env`` in ``<topic>.dlq`` with the ``dlq_*`` headers the chassis consumer writes
    when a transient fault (here: PostgreSQL refusing connections) outlasts its retries."""
    key, value, headers = to_kafka(env)
    error = "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 55432)"
    headers = [
        *headers,
        ("dlq_error", error.encode()),
        ("dlq_stacktrace", f"Traceback (most recent call last):\n{error}".encode()),
        ("dlq_attempts", b"3"),
        ("dlq_original_topic", topic.encode()),
        ("dlq_original_partition", b"0"),
        ("dlq_original_offset", str(offset).encode()),
        ("dlq_consumer_group", group.encode()),
    ]
    await producer.send_and_wait(f"{topic}.dlq", value=value, key=key, headers=headers)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _replay(topic: str, bootstrap: str, prefix: str) -> None:
    with (
        _environment({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PREFIX": prefix}),
        contextlib.suppress(SystemExit),
    ):
        cli.main(["dlq", "replay", topic])


async def chassis_dlq_replay(topic: str, *, bootstrap: str, prefix: str) -> None:
    """Run ``chassis dlq replay <topic>`` (the operator's command) against the test's topics.

    It runs in a thread with its own event loop, as the command does from a shell; the
    environment carries its settings, as in production."""
    await asyncio.to_thread(_replay, topic, bootstrap, prefix)
