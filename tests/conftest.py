"""Shared fixtures: one set of real infrastructure per run, isolated databases/topics per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from chassis.messaging.topics import ALL_TOPICS, ensure_topics, with_dlqs
from tests.support.infra import Infra, provide_infra
from tests.support.tokens import TokenIssuer


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provide_infra() as provided:
        yield provided


@pytest.fixture
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """A fresh empty database for one test, dropped afterwards."""
    url = await infra.create_database()
    yield url
    await infra.drop_database(url)


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix: the test's topics are its own."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def topics(infra: Infra, topic_prefix: str) -> str:
    """Create every project topic (and DLQ) under a fresh prefix; returns the prefix."""
    await ensure_topics(
        infra.kafka_bootstrap,
        [f"{topic_prefix}{t}" for t in with_dlqs(list(ALL_TOPICS))],
        partitions=1,
        # the first test of a run may meet a broker that has only just started
        timeout=60,
    )
    return topic_prefix


@pytest.fixture
async def redis(infra: Infra) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(infra.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    return TokenIssuer()
