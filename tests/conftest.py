"""Shared fixtures: one set of real infrastructure per run, isolated databases/topics per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from chassis import cli as chassis_cli
from chassis.messaging.topics import ALL_TOPICS, ensure_topics, with_dlqs
from tests.support.infra import Infra, provide_infra
from tests.support.kafka import delete_topics_with_prefix
from tests.support.tokens import TokenIssuer


@pytest.fixture(autouse=True)
def _cli_keeps_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLI run in-process (``board_cli(["rebuild-read-model"])``) must not configure logging.

    ``chassis.logging.configure_logging`` installs a new processor chain and caches each logger
    on first use; in the test process that detaches ``structlog.testing.capture_logs`` from every
    logger first used afterwards, so a later test that asserts on log events (e.g. the outbox
    relay's ``outage.started``) sees none. A CLI run as a subprocess configures its own logging.
    """
    monkeypatch.setattr(chassis_cli, "configure_logging", lambda *args, **kwargs: None)


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
async def topics(infra: Infra, topic_prefix: str) -> AsyncIterator[str]:
    """Create every project topic (and DLQ) under a fresh prefix; returns the prefix.

    Afterwards every topic under the prefix is deleted, those the test made itself included:
    a broker keeps files open for each partition, and the topics of a few thousand test runs
    left behind exhaust its file descriptors (``Too many open files``) on a long-lived
    development broker."""
    await ensure_topics(
        infra.kafka_bootstrap,
        [f"{topic_prefix}{t}" for t in with_dlqs(list(ALL_TOPICS))],
        partitions=1,
        # the first test of a run may meet a broker that has only just started
        timeout=60,
    )
    yield topic_prefix
    await delete_topics_with_prefix(infra.kafka_bootstrap, topic_prefix)


@pytest.fixture
async def redis(infra: Infra) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(infra.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    return TokenIssuer()
