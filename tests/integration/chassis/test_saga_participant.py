"""Saga participant: each (saga, command, attempt) is applied once, replies go through the outbox, faults apply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork, outbox_table
from chassis.faults import Fault, FaultFlags, FaultMode
from chassis.messaging.envelope import Envelope
from chassis.saga import CommandRejected, SagaCommand, SagaParticipant
from tests.integration.chassis.scratch import increment, widget_count, widgets

pytestmark = pytest.mark.integration


async def bump(uow: UnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    if command.payload.get("refuse"):
        raise CommandRejected("not today")
    await uow.session.execute(increment("w"))
    return {"bumped": True}


async def unbump(uow: UnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    await uow.session.execute(
        widgets.update().where(widgets.c.id == "w").values(count=widgets.c.count - 1)
    )
    return {}


def command(
    name: str, attempt: int = 1, compensates: str | None = None, **payload: Any
) -> Envelope:
    body = SagaCommand(
        saga_id="saga-1",
        saga_type="demo",
        step="bump",
        command=name,
        attempt=attempt,
        compensates=compensates,
        payload=payload,
    )
    return Envelope.new(name, "saga", body.model_dump(mode="json"), key="saga-1")


async def replies(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(outbox_table.c.payload).order_by(outbox_table.c.seq))
        ).all()
    return [dict(r.payload) for r in rows]


@pytest.fixture
async def participant(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, redis: Redis
) -> SagaParticipant[UnitOfWork]:
    async with engine.begin() as conn:
        await conn.execute(widgets.insert().values(id="w", count=0))
    faults = FaultFlags(redis, enabled=True, prefix="test-participant:")
    await faults.clear_all()
    return SagaParticipant(
        "demo",
        lambda: UnitOfWork(sessions, source="demo"),
        {"Bump": bump, "Unbump": unbump, "Confirm": bump},
        faults,
    )


async def test_a_duplicate_command_gets_the_same_reply_and_no_second_effect(
    participant: SagaParticipant[UnitOfWork], engine: AsyncEngine
) -> None:
    env = command("Bump")
    await participant.handle(env)
    await participant.handle(env)
    assert await widget_count(engine, "w") == 1
    sent = await replies(engine)
    assert [r["outcome"] for r in sent] == ["SUCCESS", "SUCCESS"]
    assert sent[0]["result"] == sent[1]["result"] == {"bumped": True}


async def test_a_refusal_is_a_failure_reply_and_leaves_no_effect(
    participant: SagaParticipant[UnitOfWork], engine: AsyncEngine
) -> None:
    await participant.handle(command("Bump", refuse=True))
    await participant.handle(command("Bump", refuse=True))
    assert await widget_count(engine, "w") == 0
    assert [(r["outcome"], r["reason"]) for r in await replies(engine)] == [
        ("FAILURE", "not today")
    ] * 2


async def test_a_forward_command_arriving_after_its_compensation_is_refused(
    participant: SagaParticipant[UnitOfWork], engine: AsyncEngine
) -> None:
    await participant.handle(command("Unbump", compensates="Bump"))  # timeout path: undo first
    await participant.handle(command("Bump"))  # the late original
    assert (
        await widget_count(engine, "w") == -1
    )  # the no-op-able compensation ran, the late bump did not
    sent = await replies(engine)
    assert sent[1]["outcome"] == "FAILURE"
    assert sent[1]["reason"] == "a compensation of this saga was already applied"


async def test_a_later_steps_forward_command_after_a_compensation_is_refused(
    participant: SagaParticipant[UnitOfWork], engine: AsyncEngine
) -> None:
    """Once any compensation of the saga was applied here, no forward command of it may take
    effect (e.g. ConfirmAcceptance after CancelAcceptance)."""
    await participant.handle(command("Unbump", compensates="Bump"))
    await participant.handle(command("Bump", attempt=2))  # a new attempt is refused too
    await participant.handle(command("Confirm"))  # a later step's forward command
    assert await widget_count(engine, "w") == -1
    assert [r["outcome"] for r in await replies(engine)] == ["SUCCESS", "FAILURE", "FAILURE"]


async def test_a_refused_compensation_does_not_block_the_forward_command(
    participant: SagaParticipant[UnitOfWork], engine: AsyncEngine
) -> None:
    assert participant.faults is not None
    await participant.faults.set("demo", "unbump", Fault(FaultMode.FAIL))
    await participant.handle(command("Unbump", compensates="Bump"))  # refused: no effect
    await participant.handle(command("Bump"))
    assert await widget_count(engine, "w") == 1
    assert [r["outcome"] for r in await replies(engine)] == ["FAILURE", "SUCCESS"]


async def test_fault_flags_fail_a_command_until_they_are_cleared(
    participant: SagaParticipant[UnitOfWork], engine: AsyncEngine
) -> None:
    assert participant.faults is not None
    await participant.faults.set("demo", "bump", Fault(FaultMode.FAIL))
    await participant.handle(command("Bump", attempt=1))
    await participant.faults.set("demo", "bump", Fault(FaultMode.OFF))
    await participant.handle(command("Bump", attempt=2))
    assert await widget_count(engine, "w") == 1
    outcomes = [(r["attempt"], r["outcome"]) for r in await replies(engine)]
    assert outcomes == [(1, "FAILURE"), (2, "SUCCESS")]
