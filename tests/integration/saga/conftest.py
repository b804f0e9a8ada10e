"""Fixtures for orchestrator integration tests: a migrated saga database, settings, stand-ins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.db import create_engine, create_session_factory
from chassis.messaging.producer import create_producer
from chassis.migrations import upgrade
from saga.cli import SERVICE_ROOT
from saga.config import Settings
from saga.definitions import DEFINITIONS
from saga.engine import SagaEngine
from saga.orchestrator import Policy
from saga.store import SagaUnitOfWork
from tests.integration.saga.helpers import STEP_TIMEOUT, Clock
from tests.integration.saga.standins import StandIns, running_standins
from tests.support.infra import Infra

#: Fault flags are global Redis keys; saga tests use a Redis database of their own so they never
#: switch a fault on under another suite's feet.
SAGA_TEST_REDIS_DB = 11


def saga_redis_url(infra: Infra) -> str:
    return f"{infra.redis_url.rsplit('/', 1)[0]}/{SAGA_TEST_REDIS_DB}"


@pytest.fixture
async def saga_database(database_url: str) -> str:
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)
    return database_url


@pytest.fixture
async def db(saga_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated saga database (for tests that drive SagaEngine directly)."""
    engine = create_engine(saga_database, pool_size=3)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(db: AsyncEngine, clock: Clock) -> SagaEngine:
    """The orchestrator's engine on ``db``, on the hand-moved ``clock``, step timeout 10 s."""
    sessions = create_session_factory(db)
    return SagaEngine(
        lambda: SagaUnitOfWork(sessions, "saga"),
        DEFINITIONS,
        Policy(step_timeout=STEP_TIMEOUT),
        clock=clock,
    )


def make_settings(infra: Infra, database_url: str, prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "REDIS_URL": saga_redis_url(infra),
        "FAULT_INJECTION": True,
        "STEP_TIMEOUT_SECONDS": 15,
        "COMPENSATION_RETRY_SECONDS": 0.2,
        "SWEEP_INTERVAL_SECONDS": 0.1,
        "IN_FLIGHT_REFRESH_SECONDS": 0.2,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(infra: Infra, saga_database: str, topics: str) -> Settings:
    return make_settings(infra, saga_database, topics)


@pytest.fixture
async def saga_redis(infra: Infra) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(saga_redis_url(infra), decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    p = create_producer(infra.kafka_bootstrap, "saga-tests")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def standins(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> AsyncIterator[StandIns]:
    async with running_standins(infra, topics, producer) as parts:
        yield parts


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run an app's lifespan (its background loops) in this event loop."""
    async with app.router.lifespan_context(app):
        yield app
