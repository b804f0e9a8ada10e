"""Transient vs permanent failure: a database outage is waited out by the consumer, never dead-lettered.

The consumer's database link goes through a TCP proxy that the test cuts (every connection reset,
new ones refused) in the middle of a stream of events, as a PostgreSQL restart would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork, create_engine, create_session_factory
from chassis.health import Health
from chassis.health import router as health_router
from chassis.messaging.consumer import ConsumerRunner
from chassis.messaging.envelope import Envelope, to_kafka
from chassis.messaging.topics import ensure_topics
from chassis.metrics import CONSUMER_TRANSIENT_FAILURES, CONSUMER_WAITING
from tests.integration.chassis.scratch import increment, widget_count, widgets
from tests.support.infra import Infra, wait_for
from tests.support.kafka import read_topic
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

EVENTS = 40


@pytest.fixture
async def proxy(infra: Infra, database_url: str) -> AsyncIterator[TcpProxy]:
    from urllib.parse import urlsplit

    target = urlsplit(database_url)
    p = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    yield p
    await p.close()


@pytest.fixture
async def proxied_engine(proxy: TcpProxy, database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(proxy.url(database_url), pool_size=2)
    yield eng
    await eng.dispose()


def widget_handler(
    sessions: async_sessionmaker[AsyncSession], *, hide_cause: bool
) -> Callable[[Envelope], Awaitable[None]]:
    """Apply a ``WidgetTouched`` once (inbox). ``hide_cause`` makes the handler turn every error
    into a bare RuntimeError with no cause, as careless code does: only the probe can tell."""

    async def apply(env: Envelope) -> None:
        async with UnitOfWork(sessions, source="consumer") as uow:
            if await uow.first_delivery("widget-counter", env.id):
                await uow.session.execute(increment(env.data["widget_id"]))
            await uow.commit()

    async def handle(env: Envelope) -> None:
        if not hide_cause:
            await apply(env)
            return
        failed = False
        try:
            await apply(env)
        except Exception:
            failed = True
        if failed:
            raise RuntimeError("could not record the widget")

    return handle


def readiness_app(health: Health) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(health_router)
    app.state.health = health
    health.started = True
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://worker")


@pytest.mark.parametrize(
    ("cut_seconds", "hide_cause"),
    [(4.0, False), (8.0, False), (4.0, True)],
    ids=["4s-outage", "8s-outage", "4s-outage-cause-hidden"],
)
async def test_a_database_outage_is_waited_out_every_event_applied_once_nothing_dead_lettered(
    infra: Infra,
    topics: str,
    engine: AsyncEngine,
    proxy: TcpProxy,
    proxied_engine: AsyncEngine,
    producer: AIOKafkaProducer,
    cut_seconds: float,
    hide_cause: bool,
) -> None:
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)
    async with engine.begin() as conn:
        await conn.execute(widgets.insert().values(id="w", count=0))

    async def probe() -> None:
        async with proxied_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    group = f"{topics}outage-{uuid.uuid4().hex[:6]}"
    runner = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=group,
        handler=widget_handler(create_session_factory(proxied_engine), hide_cause=hide_cause),
        producer=producer,
        service="chassis-tests",
        max_attempts=3,
        retry_backoff=0.1,
        retry_backoff_max=1.0,
        probe=probe,
    )
    health = Health()
    health.add_check(f"consumer {group}", runner.check)
    waiting = CONSUMER_WAITING.labels("chassis-tests", group)
    transient = CONSUMER_TRANSIENT_FAILURES.labels("chassis-tests", topic, group)

    async def produce() -> None:
        for i in range(EVENTS):
            env = Envelope.new("WidgetTouched", "tests", {"widget_id": "w"}, key=f"k{i % 5}")
            key, value, headers = to_kafka(env)
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(runner.run())
    async with readiness_app(health) as client:
        try:
            await asyncio.wait_for(runner.assigned.wait(), 30)
            producing = asyncio.create_task(produce())
            await wait_for(
                lambda: _at_least(engine, 5), message="the first events applied before the cut"
            )
            await proxy.cut()
            await wait_for(
                lambda: _status(client, 503), timeout=5, message="readiness 503 during the cut"
            )
            body = (await client.get("/readyz")).json()
            assert "waiting out" in body["checks"][f"consumer {group}"]
            assert waiting._value.get() >= 1
            await asyncio.sleep(cut_seconds)
            assert (await client.get("/readyz")).status_code == 503
            await producing
            await proxy.restore()

            async def all_applied() -> bool:
                return await widget_count(engine, "w") == EVENTS

            await wait_for(all_applied, timeout=40, message=f"all {EVENTS} events applied")
            await wait_for(
                lambda: _status(client, 200), timeout=10, message="readiness 200 after the cut"
            )
            assert waiting._value.get() == 0
            assert transient._value.get() >= 1
        finally:
            await runner.stop()
            await asyncio.wait_for(task, 30)

    assert await widget_count(engine, "w") == EVENTS  # exactly once: the inbox absorbed repeats
    assert await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", timeout=1) == []


async def _at_least(engine: AsyncEngine, n: int) -> bool:
    return (await widget_count(engine, "w") or 0) >= n


async def _status(client: httpx.AsyncClient, code: int) -> bool:
    return (await client.get("/readyz")).status_code == code


async def test_a_partition_revoked_while_waiting_is_dropped_and_its_new_owner_applies_it(
    infra: Infra,
    topics: str,
    engine: AsyncEngine,
    proxy: TcpProxy,
    proxied_engine: AsyncEngine,
    producer: AIOKafkaProducer,
) -> None:
    """Member A waits out an outage on both partitions; member B (healthy) joins the group. The
    rebalance takes one partition from A, which forgets its waiting state (the eager protocol
    revokes every partition, so A re-reads the one it keeps); B reads the other from the committed
    offset,
    and once the outage ends A finishes its own. Every event is applied once."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)
    async with engine.begin() as conn:
        await conn.execute(widgets.insert().values(id="w", count=0))
    group = f"{topics}rebalance-{uuid.uuid4().hex[:6]}"

    def member(name: str, sessions: async_sessionmaker[AsyncSession]) -> ConsumerRunner:
        return ConsumerRunner(
            kafka=infra.kafka_bootstrap,
            topics=[topic],
            group_id=group,
            handler=widget_handler(sessions, hide_cause=False),
            producer=producer,
            service="chassis-tests",
            retry_backoff=0.1,
            retry_backoff_max=0.5,
            client_id=name,
        )

    a = member("member-a", create_session_factory(proxied_engine))
    b = member("member-b", create_session_factory(engine))
    task_a = asyncio.create_task(a.run())
    task_b: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(a.assigned.wait(), 30)
        await proxy.cut()
        for i in range(10):
            env = Envelope.new("WidgetTouched", "tests", {"widget_id": "w"}, key=f"k{i}")
            key, value, headers = to_kafka(env)
            await producer.send_and_wait(
                topic, value=value, key=key, headers=headers, partition=i % 2
            )
        await wait_for(
            lambda: _equals(lambda: a.waiting_partitions, 2), message="A waiting on both"
        )
        task_b = asyncio.create_task(b.run())

        async def half_applied() -> bool:
            return await widget_count(engine, "w") == 5

        await wait_for(half_applied, timeout=40, message="B applied the partition it took over")

        async def a_waits_on_its_own_partition_only() -> bool:
            # the revoked partition was forgotten; A re-read the one it kept and waits again
            owned = a.consumer.assignment() if a.consumer is not None else set()
            return a.waiting_partitions == 1 and set(a._waiting) <= owned

        await wait_for(a_waits_on_its_own_partition_only, message="A waiting on one partition")
        await proxy.restore()

        async def all_applied() -> bool:
            return await widget_count(engine, "w") == 10

        await wait_for(all_applied, timeout=30, message="A applied its own after the outage")
        await wait_for(lambda: _equals(lambda: a.waiting_partitions, 0), message="A not waiting")
    finally:
        for runner in (a, b):
            await runner.stop()
        await asyncio.wait_for(task_a, 30)
        if task_b is not None:
            await asyncio.wait_for(task_b, 30)
    assert await widget_count(engine, "w") == 10
    assert await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", timeout=1) == []


async def _equals(value: Callable[[], int], expected: int) -> bool:
    return value() == expected
