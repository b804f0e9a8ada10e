"""Read path without pre-ping: a read session needs no transaction and survives a dropped connection."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from chassis.db import ReadOnlySession, read_session_factory
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


def _pool(engine: AsyncEngine) -> QueuePool:
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool


async def _terminate(infra: Infra, pid: int) -> None:
    """The server ends the backend, as a PostgreSQL restart or an administrator would."""
    admin = await asyncpg.connect(infra.pg_admin_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.3)  # the client's event loop reads the close


async def test_a_read_opens_no_transaction(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with read_session_factory(sessions)() as session:
        assert isinstance(session, ReadOnlySession)
        assert await session.scalar(text("SELECT 1")) == 1
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        # no BEGIN was sent, so no ROLLBACK will be either
        assert raw.driver_connection is not None
        assert not raw.driver_connection.is_in_transaction()


async def test_a_read_survives_its_connection_dropped_between_statements(
    infra: Infra, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with read_session_factory(sessions)() as session:
        first = await session.scalar(text("SELECT pg_backend_pid()"))
        await _terminate(infra, first)
        # the session still holds the dropped connection: the read is retried on a new one
        second = await session.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
        rows = (await session.execute(text("SELECT 1 UNION ALL SELECT 2"))).scalars().all()
        assert rows == [1, 2]


@pytest.mark.parametrize("read", [True, False], ids=["read session", "unit of work session"])
async def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    infra: Infra,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    read: bool,
) -> None:
    factory = read_session_factory(sessions) if read else sessions
    async with factory() as session:
        first = await session.scalar(text("SELECT pg_backend_pid()"))
    await _terminate(infra, first)  # now idle in the pool
    async with factory() as session:
        second = await session.scalar(text("SELECT pg_backend_pid()"))
    assert second != first
    assert _pool(engine).checkedout() == 0


async def test_a_read_session_shares_the_engine_pool(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    reads = read_session_factory(sessions)
    assert read_session_factory(sessions) is reads  # built once
    async with reads() as session:
        await session.scalar(text("SELECT 1"))
    before = _pool(engine).checkedin()
    async with sessions() as session:  # a write session gets the same connection back ...
        await session.scalar(text("SELECT 1"))
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        # ... at the default isolation level, in a transaction
        assert raw.driver_connection is not None
        assert raw.driver_connection.is_in_transaction()
    assert _pool(engine).checkedin() == before
