"""Fixtures for chassis integration tests: a scratch database with the chassis tables."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import create_engine, create_session_factory
from chassis.messaging.producer import create_producer
from tests.integration.chassis.scratch import create_schema
from tests.support.infra import Infra


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=5)
    await create_schema(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    p = create_producer(infra.kafka_bootstrap, "chassis-tests")
    await p.start()
    yield p
    await p.stop()
