"""Helpers for the member integration tests: sign-up/login shortcuts and Kafka reading/writing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from chassis.messaging.envelope import Envelope, to_kafka

PASSWORD = "correct horse battery"


def unique_email(tag: str = "m") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def unique_nickname(tag: str = "m") -> str:
    return f"{tag}{uuid.uuid4().hex[:8]}"


async def sign_up(
    client: httpx.AsyncClient, *, email: str | None = None, nickname: str | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/api/members",
        json={
            "email": email or unique_email(),
            "password": PASSWORD,
            "nickname": nickname or unique_nickname(),
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def publish(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    """Publish chassis envelopes (CloudEvents binary mode) the way an outbox relay would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for env in envelopes:
            key, value, headers = to_kafka(env)
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 20.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning until ``done(records)`` holds (or fail on timeout)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions: set[int] = set()
        while not partitions:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        while loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
            if done(records):
                return records
        raise AssertionError(f"timed out reading {topic}; got {len(records)} records")
    finally:
        await consumer.stop()


def ce_headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode() for k, v in (record.headers or [])}
