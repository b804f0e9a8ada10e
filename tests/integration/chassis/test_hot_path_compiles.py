"""The consumer's per-message statements (inbox, outbox, checkpoint, saga command log) compile nothing per message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.checkpoints import load_checkpoint, save_checkpoint
from chassis.db import UnitOfWork, outbox_table, saga_command_log_table
from chassis.messaging.envelope import Envelope
from chassis.saga import SagaCommand, SagaParticipant
from tests.support.compiles import compiled_sql

pytestmark = pytest.mark.integration


async def test_the_inbox_outbox_and_checkpoint_compile_nothing_per_message(
    monkeypatch: pytest.MonkeyPatch,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """SQLAlchemy compiles a PostgreSQL ``INSERT ... ON CONFLICT`` at every execution (it has
    no cache key): the inbox record and the checkpoint were compiled for each message."""

    async def one_message(i: int) -> bool:
        async with UnitOfWork(sessions, "tests") as uow:
            first = await uow.first_delivery("compiled-tests", f"m-{i}")
            await uow.publish("t.events", "Thing", key="k", data={"i": i})
            await save_checkpoint(uow.session, "things", "t.events", 0, i + 1)
            await uow.commit()
        return first

    await one_message(0)  # compiled here, for the engine's dialect, once
    with compiled_sql(monkeypatch) as compiled:
        assert [await one_message(i) for i in range(1, 6)] == [True] * 5
        async with UnitOfWork(sessions, "tests") as uow:  # the inbox still knows a message
            assert await uow.first_delivery("compiled-tests", "m-3") is False
    assert compiled == []
    async with sessions() as session:
        assert await load_checkpoint(session, "things", "t.events", 0) == 6
        staged = (await session.execute(select(outbox_table.c.payload))).scalars().all()
        assert sorted(p["i"] for p in staged) == list(range(6))


async def test_a_saga_participant_compiles_nothing_per_command(
    monkeypatch: pytest.MonkeyPatch, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The command log (an INSERT of PostgreSQL's dialect, never cached), the saga lock and the
    look-ups of an earlier outcome and of a compensation, for every command handled."""

    async def noop(uow: UnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
        return {"done": command.saga_id}

    participant = SagaParticipant("demo", lambda: UnitOfWork(sessions, source="demo"), {"Do": noop})

    def command(saga_id: str) -> Envelope:
        body = SagaCommand(
            saga_id=saga_id, saga_type="demo", step="do", command="Do", attempt=1, payload={}
        )
        return Envelope.new("Do", "saga", body.model_dump(mode="json"), key=saga_id)

    await participant.handle(command("saga-0"))
    with compiled_sql(monkeypatch) as compiled:
        for i in range(1, 4):
            await participant.handle(command(f"saga-{i}"))
        await participant.handle(command("saga-2"))  # a duplicate: the logged reply again
    assert compiled == []
    async with sessions() as session:
        logged = (await session.execute(select(saga_command_log_table.c.saga_id))).scalars()
        assert sorted(logged) == [f"saga-{i}" for i in range(4)]
        results = (await session.execute(select(outbox_table.c.payload))).scalars().all()
    assert sorted(r["result"]["done"] for r in results if "result" in r) == [
        "saga-0",
        "saga-1",
        "saga-2",
        "saga-2",
        "saga-3",
    ]
