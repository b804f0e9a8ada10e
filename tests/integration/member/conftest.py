"""Fixtures for the member service: a migrated database, settings, the api app and a client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from chassis.migrations import upgrade
from member.bootstrap import build_api
from member.config import SERVICE_ROOT, Settings
from tests.support.infra import Infra


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def signing_key_pem(signing_key: Ed25519PrivateKey) -> str:
    return signing_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)
    return database_url


@pytest.fixture
def settings(infra: Infra, migrated_url: str, topic_prefix: str, signing_key_pem: str) -> Settings:
    """Settings of one test: its own database, topic prefix and Redis key prefix (topics are
    created only by tests that ask for the ``topics`` fixture). Every request of the suite comes
    from one address, so the limits per client address are off here; the tests of those limits
    set their own small values."""
    return Settings(
        DATABASE_URL=migrated_url,
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=topic_prefix,
        REDIS_URL=infra.redis_url,
        REDIS_KEY_PREFIX=f"{topic_prefix}member:",
        LOGIN_PER_ADDRESS_PER_MINUTE=0,
        SIGN_UP_PER_ADDRESS_PER_MINUTE=0,
        JWT_PRIVATE_KEY=signing_key_pem,
        DATABASE_POOL_SIZE=5,
        SHUTDOWN_TIMEOUT_SECONDS=10,
    )


@pytest.fixture
async def api_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = build_api(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api_app), base_url="http://test"
    ) as http:
        yield http
