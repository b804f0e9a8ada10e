"""Fixtures for the qna service: a migrated database, the api and the worker in-process, a client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from chassis.auth import JwksVerifier
from chassis.db import create_engine
from chassis.migrations import upgrade
from qna.bootstrap import build_api, build_worker
from qna.config import SERVICE_ROOT, Settings
from tests.integration.qna.harness import QnaHarness
from tests.support.infra import Infra
from tests.support.tokens import TokenIssuer

#: Fault flags are global Redis keys: the test that sets them uses a Redis database of its own.
FAULTS_REDIS_DB = 11


@pytest.fixture
async def settings(infra: Infra, database_url: str, topics: str) -> Settings:
    """Settings of one test: its own migrated database and its own topics."""
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)
    return Settings(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=topics,
        REDIS_URL=infra.redis_url,
        DATABASE_POOL_SIZE=5,
        FAULT_INJECTION=False,
        SHUTDOWN_TIMEOUT_SECONDS=10,
        SHUTDOWN_DRAIN_SECONDS=0,
    )


@asynccontextmanager
async def running(settings: Settings, issuer: TokenIssuer) -> AsyncIterator[QnaHarness]:
    """The qna api and worker running against real PostgreSQL, Kafka and Redis."""
    api = build_api(settings)
    api.state.verifier = JwksVerifier(issuer.fetch, issuer="msa-member", audience="msa")
    worker = build_worker(settings)
    engine = create_engine(settings.DATABASE_URL, pool_size=2)
    try:
        async with (
            api.router.lifespan_context(api),
            worker.router.lifespan_context(worker),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=api), base_url="http://test"
            ) as client,
        ):
            yield QnaHarness(settings, client, issuer, engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def qna(settings: Settings, issuer: TokenIssuer) -> AsyncIterator[QnaHarness]:
    async with running(settings, issuer) as harness:
        yield harness


@pytest.fixture
async def qna_with_faults(settings: Settings, issuer: TokenIssuer) -> AsyncIterator[QnaHarness]:
    """qna with FAULT_INJECTION=true, reading its flags from a Redis database of its own."""
    parts = urlsplit(settings.REDIS_URL)
    redis_url = urlunsplit(parts._replace(path=f"/{FAULTS_REDIS_DB}"))
    faulty = settings.model_copy(update={"FAULT_INJECTION": True, "REDIS_URL": redis_url})
    async with running(faulty, issuer) as harness:
        yield harness
