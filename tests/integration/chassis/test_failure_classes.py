"""Transient vs permanent failure against a real PostgreSQL: a deterministic driver error is not an outage."""

from __future__ import annotations

import pytest
import sqlalchemy.exc
from sqlalchemy import Integer, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.messaging.failures import Failure, classify

pytestmark = pytest.mark.integration


async def test_an_argument_the_driver_cannot_encode_is_not_transient(engine: AsyncEngine) -> None:
    """SQLAlchemy wraps asyncpg's encoding error (a DBAPIError, or its InterfaceError subclass
    depending on the driver's path); waiting it out would block the message's partition
    forever, since every retry fails the same way."""
    query = text("SELECT :n").bindparams(bindparam("n", type_=Integer))
    async with engine.connect() as conn:
        with pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
            await conn.execute(query, {"n": 3_000_000_000})  # beyond int4
    assert "int32" in str(raised.value)
    assert classify(raised.value) is Failure.UNCLASSIFIED


async def test_a_connection_killed_by_the_server_is_transient(engine: AsyncEngine) -> None:
    async with engine.connect() as victim, engine.connect() as admin:
        pid = await victim.scalar(text("SELECT pg_backend_pid()"))
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
            await victim.execute(text("SELECT 1"))
    assert classify(raised.value) is Failure.TRANSIENT
