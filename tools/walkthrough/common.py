"""What several walkthroughs share: a logged-in load on the stack's gateway, the post list (board's CQRS read model) read beside its write model, the outbox backlog, the dead-letter topics."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from chassis.messaging.connection import KafkaConnection, kafka_options
from chassis.messaging.topics import ALL_TOPICS, dlq
from tools.chaos.load import Load
from tools.chaos.stack import Target


@asynccontextmanager
async def session(target: Target) -> AsyncIterator[Load]:
    """A ``Load`` on ``target``'s gateway with its admin logged in; ``RuntimeError`` when the
    gateway does not answer or the admin cannot log in."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as http:
        try:
            # A short timeout: a stack that is down must fail the walkthrough at once.
            (await http.get(f"{target.gateway_url}/readyz", timeout=2)).raise_for_status()
        except httpx.HTTPError as exc:
            raise RuntimeError(
                f"the gateway at {target.gateway_url} is not ready ({exc}): is `make run` running?"
            ) from exc
        load = Load(
            http, random.Random(), target.gateway_url, target.admin_email, target.admin_password
        )
        load.admin = await load.log_in(target.admin_email, target.admin_password)
        if load.admin is None:
            raise RuntimeError(f"the admin {target.admin_email} cannot log in through the gateway")
        yield load


@asynccontextmanager
async def board_db(target: Target) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to board's database (its write model and read model)."""
    connection = await asyncpg.connect(target.database_url("board"), timeout=5)
    try:
        yield connection
    finally:
        await connection.close()


#: Each post beside its row in the post list (``post_summaries``), the live comments counted.
POST_ROWS = """
SELECT p.id::text AS post_id, p.title, s.title AS listed_title,
       (SELECT count(*) FROM comments c WHERE c.post_id = p.id AND c.deleted_at IS NULL)
         AS comments,
       s.comment_count AS listed_comments, s.post_id IS NOT NULL AS listed
  FROM posts p LEFT JOIN post_summaries s ON s.post_id = p.id
 WHERE p.id = ANY($1::uuid[])
 ORDER BY p.created_at
"""


async def post_rows(db: asyncpg.Connection, post_ids: list[str]) -> list[dict[str, Any]]:
    """``POST_ROWS`` for ``post_ids``: one dict per post that exists in the write model."""
    return [dict(row) for row in await db.fetch(POST_ROWS, post_ids)]


def unprojected(rows: list[dict[str, Any]]) -> list[str]:
    """The posts whose list row is missing or differs from the post (title, comment count)."""
    return [
        row["post_id"]
        for row in rows
        if not row["listed"]
        or row["listed_title"] != row["title"]
        or row["listed_comments"] != row["comments"]
    ]


async def until(
    probe: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.5
) -> float | None:
    """Seconds until ``probe()`` holds, or None when it did not within ``timeout`` seconds."""
    started = time.monotonic()
    while True:
        if await probe():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(interval)


async def write_posts(
    load: Load, stop: asyncio.Event, written: list[str], writers: int = 2
) -> None:
    """Posts written by ``writers`` members at once until ``stop`` is set; each id is
    appended to ``written`` as soon as it is answered."""

    async def writer(index: int) -> None:
        member = load.world.members[index % len(load.world.members)]
        while not stop.is_set():
            post_id = await load.write_post(member)
            if post_id is not None:
                written.append(post_id)
            await asyncio.sleep(0.05)

    await asyncio.gather(*(writer(i) for i in range(writers)))


def failed(load: Load, since: int, ops: tuple[str, ...] | None = None) -> list[str]:
    """The requests of ``load`` from index ``since`` on (of ``ops``, default any) that failed."""
    return [
        f"{r.op} -> {r.status} {r.detail[:80]}".rstrip()
        for r in load.requests[since:]
        if not r.ok and (ops is None or r.op in ops)
    ]


#: Board's outbox rows the relay has not published yet (the backlog).
UNPUBLISHED = "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL"


async def kafka_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """Whether every broker of ``bootstrap`` (``host:port,...``) accepts a TCP connection."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        except (OSError, TimeoutError):
            return False
        writer.close()
        await writer.wait_closed()
    return True


async def dead_letters(target: Target) -> dict[str, int]:
    """The end offset of each dead-letter topic of ``target`` (``<topic>.dlq`` under its
    ``KAFKA_TOPIC_PREFIX``), summed over its partitions: how many messages were ever
    dead-lettered there (0 for a topic not created). Raises aiokafka's ``KafkaError`` when
    the broker does not answer."""
    prefix = target.settings.get("KAFKA_TOPIC_PREFIX", "")
    topics = [f"{prefix}{dlq(topic)}" for topic in ALL_TOPICS]
    consumer = AIOKafkaConsumer(
        **kafka_options(KafkaConnection(target.kafka_bootstrap)), group_id=None
    )
    await consumer.start()
    try:
        await consumer.topics()  # the cluster's metadata: which topics and partitions exist
        parts = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(parts) if parts else {}
    finally:
        await consumer.stop()
    return {topic: sum(n for tp, n in ends.items() if tp.topic == topic) for topic in topics}


async def faults_on(load: Load) -> list[Any] | None:
    """The step faults that are on (``GET /api/admin/faults`` as the admin); None when they
    cannot be read."""
    assert load.admin is not None
    body = await load.call("faults", "GET", "/api/admin/faults", 200, load.admin)
    return None if body is None else list(body["items"])
