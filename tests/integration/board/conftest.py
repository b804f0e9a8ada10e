"""Fixtures: the board api (and worker) in-process on a fresh database, topics and Redis keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from board.bootstrap import build_api, build_worker
from board.config import SERVICE_ROOT, Settings
from chassis.auth import JwksVerifier
from chassis.db import create_engine
from chassis.messaging.producer import create_producer
from chassis.migrations import upgrade
from tests.integration.board.harness import BoardStack
from tests.support.infra import Infra
from tests.support.tokens import TokenIssuer


@pytest.fixture
async def board_settings(database_url: str, topics: str, infra: Infra) -> Settings:
    """Settings of a board whose database, topics and Redis keys belong to this test only."""
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)
    return Settings(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=topics,
        REDIS_URL=infra.redis_url,
        REDIS_KEY_PREFIX=f"{topics}board:",
        VIEW_FLUSH_SECONDS=0.2,
        DATABASE_POOL_SIZE=5,
        # Fault flags live in a Redis shared by every test run; these tests inject none.
        FAULT_INJECTION=False,
    )


async def _start(
    settings: Settings, issuer: TokenIssuer, *, with_worker: bool
) -> AsyncIterator[BoardStack]:
    api = build_api(settings)
    api.state.verifier = JwksVerifier(issuer.fetch, issuer="msa-member", audience="msa")
    engine = create_engine(settings.DATABASE_URL, pool_size=2)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        await stack.enter_async_context(api.router.lifespan_context(api))
        producer = None
        if with_worker:
            worker = build_worker(settings)
            await stack.enter_async_context(worker.router.lifespan_context(worker))
            producer = create_producer(settings.KAFKA_BOOTSTRAP_SERVERS, "board-tests")
            await producer.start()
            stack.push_async_callback(producer.stop)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://test")
        )
        yield BoardStack(settings, client, issuer, engine, producer, api.state.first_page_cache)


@pytest.fixture
async def board_api(board_settings: Settings, issuer: TokenIssuer) -> AsyncIterator[BoardStack]:
    """Only ``board api`` (no worker): for tests of the HTTP edge and the write model."""
    async for stack in _start(board_settings, issuer, with_worker=False):
        yield stack


@pytest.fixture
async def board(board_settings: Settings, issuer: TokenIssuer) -> AsyncIterator[BoardStack]:
    """``board api`` and ``board worker`` together, plus a producer for the test's own events."""
    async for stack in _start(board_settings, issuer, with_worker=True):
        yield stack
