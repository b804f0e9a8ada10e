"""Compiled read statements: a Core SELECT compiled once runs as SQL with its parameters, on the session's connection."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Integer, String, bindparam, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.db import CompiledSelect, read_session_factory
from tests.integration.chassis.test_read_path import _terminate
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

_PARAMS = CompiledSelect(
    select(
        bindparam("id", type_=String).label("id"),
        (bindparam("n", type_=Integer) + literal(1)).label("n_plus_one"),
        literal("constant").label("constant"),
    )
)


async def test_values_are_bound_by_name_and_constants_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with read_session_factory(sessions)() as session:
        rows = await _PARAMS.all(session, id="x", n=41)
    assert [tuple(r) for r in rows] == [("x", 42, "constant")]
    assert rows[0].n_plus_one == 42


async def test_a_missing_value_is_a_type_error(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with read_session_factory(sessions)() as session:
        with pytest.raises(TypeError, match="n"):
            await _PARAMS.all(session, id="x")


def test_a_statement_that_cannot_be_compiled_once_is_refused() -> None:
    with pytest.raises(ValueError, match="compilable once"):
        CompiledSelect(select(literal(1)).where(literal(1).in_(bindparam("ids", expanding=True))))


async def test_a_backslash_escape_is_written_for_the_connected_server(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Compiled for a dialect that has not met the server, ``ESCAPE '\\'`` is written with a
    doubled backslash, which PostgreSQL (standard_conforming_strings) refuses."""
    matches = CompiledSelect(
        select(literal("100% sure").ilike(bindparam("pattern", type_=String), escape="\\"))
    )
    async with read_session_factory(sessions)() as session:
        assert (await matches.all(session, pattern="100\\%%"))[0][0] is True
        assert (await matches.all(session, pattern="100\\%x%"))[0][0] is False


async def test_a_read_survives_its_connection_dropped(
    infra: Infra, sessions: async_sessionmaker[AsyncSession]
) -> None:
    pid = CompiledSelect(select(text("pg_backend_pid()")))
    async with read_session_factory(sessions)() as session:
        first = (await pid.all(session))[0][0]
        await _terminate(infra, first)
        # the session still holds the dropped connection: the read is retried on a new one
        second = (await pid.all(session))[0][0]
    assert second != first


async def test_on_a_unit_of_work_session_it_runs_in_its_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    name = f"t_{uuid.uuid4().hex[:8]}"
    count = CompiledSelect(select(text(f"count(*) FROM {name}")))
    async with sessions() as session, session.begin():
        await session.execute(text(f"CREATE TABLE {name} (x int)"))
        await session.execute(text(f"INSERT INTO {name} VALUES (1)"))
        assert (await count.all(session))[0][0] == 1  # sees the uncommitted row
        await session.rollback()
