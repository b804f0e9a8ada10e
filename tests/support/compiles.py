"""Counting SQL compilations: the hot path's statements are compiled once, not per message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler

from chassis.db import UnitOfWork, create_engine, create_session_factory
from chassis.messaging.envelope import Envelope
from chassis.migrations import upgrade
from chassis.read_model import ReadModel, live_projector


@contextmanager
def compiled_sql(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Yields the list of the SQL strings SQLAlchemy compiles inside the block (each
    ``SQLCompiler`` built, whether for a cache miss or an uncacheable statement)."""
    seen: list[str] = []
    original = SQLCompiler.__init__

    def counting(self: SQLCompiler, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        seen.append(self.string)

    with monkeypatch.context() as patch:
        patch.setattr(SQLCompiler, "__init__", counting)
        yield seen


async def compiled_by_projecting(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    service_root: Path,
    model: ReadModel,
    uow: Callable[[async_sessionmaker[AsyncSession]], UnitOfWork],
    histories: Callable[[int], list[Envelope]],
) -> list[str]:
    """Migrate ``service_root``'s database, project ``histories(0)`` through the live projector
    (its statements compiled at their first use), then return what projecting ``histories(1)``
    and ``histories(2)`` (the same kinds of events, for other entities) compiled."""
    await asyncio.to_thread(upgrade, service_root, database_url)
    engine = create_engine(database_url, pool_size=2)
    try:
        handle = live_projector(lambda: uow(create_session_factory(engine)), model, "tests")
        for env in histories(0):
            await handle(env)
        with compiled_sql(monkeypatch) as compiled:
            for env in [*histories(1), *histories(2)]:
                await handle(env)
        return compiled
    finally:
        await engine.dispose()
