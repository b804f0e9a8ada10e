"""Transactional outbox under a database outage: the relay backs off, resumes by itself, and publishes every row once."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from chassis.db import UnitOfWork, create_engine, create_session_factory, outbox_table
from chassis.messaging.envelope import headers_dict
from chassis.messaging.failures import Backoff
from chassis.messaging.outbox import OutboxRelay
from chassis.messaging.topics import ensure_topics
from tests.integration.chassis.scratch import widgets
from tests.support.infra import Infra, wait_for
from tests.support.kafka import read_topic
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


async def _stage(sessions: async_sessionmaker[AsyncSession], n: int) -> None:
    for _ in range(n):
        widget_id = uuid.uuid4().hex
        async with UnitOfWork(sessions, source="chassis-tests") as uow:
            await uow.session.execute(widgets.insert().values(id=widget_id, count=0))
            await uow.publish("widget.events", "WidgetCreated", key=widget_id, data={})
            await uow.commit()


async def _unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(outbox_table)
            .where(outbox_table.c.published_at.is_(None))
        )
    return int(count or 0)


async def test_the_relay_waits_out_a_database_outage_and_publishes_every_row_once(
    infra: Infra,
    topics: str,
    database_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
) -> None:
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic], partitions=1)
    target = urlsplit(database_url)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    relay_engine = create_engine(proxy.url(database_url), pool_size=2)
    relay = OutboxRelay(
        create_session_factory(relay_engine),
        producer,
        service="chassis-tests",
        topic_prefix=topics,
        backoff=Backoff(initial=0.1, cap=0.5),
    )
    with capture_logs() as logs:
        task = asyncio.create_task(relay.run())
        try:
            await _stage(sessions, 5)
            await wait_for(lambda: _none_left(engine), message="the first rows published")

            await proxy.cut()  # the relay's database goes away (as in a restart) ...
            await _stage(sessions, 5)  # ... while the services keep committing events
            await asyncio.sleep(3)
            assert not task.done(), "the relay loop died during the outage"
            assert await _unpublished(engine) == 5
            await proxy.restore()

            await wait_for(lambda: _none_left(engine), timeout=30, message="the backlog published")
        finally:
            await relay.stop()
            await asyncio.wait_for(task, 30)
            await relay_engine.dispose()
            await proxy.close()

    records = await read_topic(infra.kafka_bootstrap, topic, min_count=10)
    ids = [headers_dict(r.headers)["ce_id"] for r in records]
    assert len(ids) == 10
    assert len(set(ids)) == 10  # every row once
    events = [e["event"] for e in logs if e.get("loop") == "outbox relay"]
    assert events.count("outage.started") == 1  # logged once per outage, not per try
    assert events.count("outage.ended") == 1


async def _none_left(engine: AsyncEngine) -> bool:
    return await _unpublished(engine) == 0
