"""Saga participant: each (saga, command, attempt) is applied once, replies go through the outbox, faults apply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork, outbox_table
from chassis.faults import Fault, FaultFlags, FaultMode
from chassis.messaging.consumer import ConsumerRunner
from chassis.messaging.envelope import Envelope, headers_dict
from chassis.messaging.failures import PermanentFailure
from chassis.messaging.outbox import OutboxRelay
from chassis.messaging.topics import REPLY_TOPIC, ensure_topics
from chassis.saga import CommandRejected, SagaCommand, SagaParticipant, command_topic
from tests.integration.chassis.scratch import increment, widget_count, widgets
from tests.support.infra import Infra, wait_for
from tests.support.kafka import read_topic, send_envelope

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


async def slow_unbump(uow: UnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    result = await unbump(uow, command)
    await asyncio.sleep(1.0)  # the compensation's transaction stays open a while
    return result


async def test_a_late_forward_command_waits_for_a_compensation_in_flight_and_is_refused(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """Two members handle the compensation and the late forward command at once (a rebalance):
    the forward command must see the compensation, not pass the check before it commits."""
    async with engine.begin() as conn:
        await conn.execute(widgets.insert().values(id="w", count=0))
    participant = SagaParticipant(
        "demo", lambda: UnitOfWork(sessions, source="demo"), {"Bump": bump, "Unbump": slow_unbump}
    )
    compensation = asyncio.create_task(participant.handle(command("Unbump", compensates="Bump")))
    await asyncio.sleep(0.3)  # the compensation is inside its transaction now
    await participant.handle(command("Bump"))
    await compensation
    assert await widget_count(engine, "w") == -1  # the late forward command had no effect
    by_command = {r["command"]: r for r in await replies(engine)}
    assert by_command["Unbump"]["outcome"] == "SUCCESS"
    assert by_command["Bump"]["outcome"] == "FAILURE"
    assert by_command["Bump"]["reason"] == "a compensation of this saga was already applied"


async def refuse_always(uow: UnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    raise PermanentFailure("the widget is gone for good")


async def test_a_dead_lettered_command_is_answered_with_a_failure_reply(
    infra: Infra,
    topics: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
) -> None:
    """Without a reply the orchestrator would wait, or at the pivot re-send, forever."""
    participant = SagaParticipant(
        "demo", lambda: UnitOfWork(sessions, source="demo"), {"Bump": refuse_always}
    )
    topic = f"{topics}{command_topic('demo')}"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    raised = command("Bump", attempt=2)
    unreadable = Envelope.new(  # the payload fails validation (no saga_type); its key does not
        "Bump",
        "saga",
        {"saga_id": "saga-2", "step": "bump", "command": "Bump", "attempt": 1},
        key="saga-2",
    )
    for env in (raised, unreadable):
        await send_envelope(infra.kafka_bootstrap, topic, env)
    runner = ConsumerRunner(
        kafka=infra.kafka_bootstrap,
        topics=[topic],
        group_id=f"{topics}demo-saga",
        handler=participant.handle,
        producer=producer,
        service="chassis-tests",
        on_dead_letter=participant.on_dead_letter,
    )
    relay = OutboxRelay(sessions, producer, service="chassis-tests", topic_prefix=topics)
    task = asyncio.create_task(runner.run())
    try:
        parked = await read_topic(infra.kafka_bootstrap, f"{topic}.dlq", min_count=2, timeout=30)

        async def both_answered() -> bool:
            return len(await replies_in_outbox(sessions)) == 2

        await wait_for(both_answered, timeout=30, message="two FAILURE replies in the outbox")
    finally:
        await runner.stop()
        await asyncio.wait_for(task, 30)
    await relay.publish_batch()
    assert [headers_dict(r.headers)["ce_id"] for r in parked] == [raised.id, unreadable.id]
    assert [headers_dict(r.headers)["dlq_reason"] for r in parked] == ["permanent"] * 2
    sent = await read_topic(infra.kafka_bootstrap, f"{topics}{REPLY_TOPIC}", min_count=2)
    bodies = [json.loads(r.value) for r in sent]
    assert [(b["saga_id"], b["command"], b["attempt"], b["outcome"]) for b in bodies] == [
        ("saga-1", "Bump", 2, "FAILURE"),
        ("saga-2", "Bump", 1, "FAILURE"),
    ]
    assert bodies[0]["reason"] == "dead-lettered: PermanentFailure: the widget is gone for good"
    assert bodies[1]["reason"].startswith("dead-lettered: ValidationError")
    # a re-send of the same attempt gets the same refusal from the log, without a DLQ copy
    await participant.handle(raised)
    assert (await replies_in_outbox(sessions))[-1]["outcome"] == "FAILURE"


async def replies_in_outbox(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = (
            await session.execute(select(outbox_table.c.payload).order_by(outbox_table.c.seq))
        ).all()
    return [dict(r.payload) for r in rows]
