"""Compiled writes: an INSERT ... ON CONFLICT / UPDATE compiled once runs in the session's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import CompiledWrite, UnitOfWork

pytestmark = pytest.mark.integration

_metadata = MetaData()
_things = Table(
    "compiled_things",
    _metadata,
    Column("id", String(64), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("doc", JSONB, nullable=False),
)


def _upsert() -> CompiledWrite:
    stmt = insert(_things).values(
        id=bindparam("id", type_=String()),
        n=bindparam("n", type_=Integer()),
        doc=bindparam("doc", type_=_things.c.doc.type),
    )
    return CompiledWrite(
        stmt.on_conflict_do_update(
            index_elements=[_things.c.id],
            set_={"n": _things.c.n + stmt.excluded.n},
            where=stmt.excluded.n > 0,  # a zero moves nothing: no row back
        ).returning(_things.c.n)
    )


_UPSERT = _upsert()
_BUMP = CompiledWrite(update(_things).where(_things.c.n >= bindparam("at_least")).values(n=0))


@pytest.fixture
async def things(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.run_sync(_metadata.create_all)
    return engine


async def test_returning_rows_rowcount_and_json_values(
    things: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        first = await _UPSERT.execute(session, id="a", n=2, doc={"k": [1, "x"]})
        assert first.scalar() == 2
        again = await _UPSERT.execute(session, id="a", n=3, doc={})
        assert (again.rowcount, again.scalar()) == (1, 5)
        skipped = await _UPSERT.execute(session, id="a", n=0, doc={})
        assert (skipped.rowcount, skipped.first()) == (0, None)
        await _UPSERT.execute(session, id="b", n=1, doc={})
        assert (await _BUMP.execute(session, at_least=1)).rowcount == 2
    async with things.connect() as conn:
        rows = (await conn.execute(select(_things.c.id, _things.c.doc))).all()
    docs = {row.id: row.doc for row in rows}
    assert docs == {"a": {"k": [1, "x"]}, "b": {}}  # serialized by the column type's processor


async def test_it_runs_in_the_unit_of_work_transaction(
    things: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with UnitOfWork(sessions, "tests") as uow:
        await _UPSERT.execute(uow.session, id="gone", n=1, doc={})
        # not committed: leaving the block rolls it back
    async with UnitOfWork(sessions, "tests") as uow:
        await _UPSERT.execute(uow.session, id="kept", n=1, doc={})
        await uow.commit()
    async with things.connect() as conn:
        ids = (await conn.scalars(select(_things.c.id))).all()
    assert ids == ["kept"]


async def test_a_missing_value_and_a_statement_not_compilable_once_are_refused(
    things: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        with pytest.raises(TypeError, match="doc"):
            await _UPSERT.execute(session, id="a", n=1)
    with pytest.raises(ValueError, match="compilable once"):
        CompiledWrite(
            update(_things).where(_things.c.id.in_(bindparam("ids", expanding=True))).values(n=1)
        )
    with pytest.raises(TypeError, match="not a SQL statement"):
        CompiledWrite("UPDATE compiled_things SET n = 1")  # type: ignore[arg-type]
