"""What the deadline sweeper sleeps on, against real PostgreSQL: the earliest deadline ahead, read in the sweep's own transaction, and the engine's word when it commits a deadline."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.messaging.envelope import Envelope
from chassis.saga import Outcome, SagaReply
from saga.engine import SagaEngine
from tests.integration.saga.helpers import STEP_TIMEOUT as STEP
from tests.integration.saga.helpers import T0, Clock, start

pytestmark = pytest.mark.integration


async def test_a_sweep_answers_the_earliest_deadline_still_ahead(
    engine: SagaEngine, clock: Clock
) -> None:
    assert await engine.sweep_until_next() == (0, None)  # nothing in flight: sleep the cap
    await start(engine, "member-withdrawal", {"member_id": "a"})
    clock.now = T0 + dt.timedelta(seconds=3)
    await start(engine, "member-withdrawal", {"member_id": "b"})
    assert await engine.sweep_until_next() == (0, T0 + STEP)
    clock.now = T0 + dt.timedelta(seconds=11)  # a's step timed out, b's has 2 s to go
    assert await engine.sweep_until_next() == (1, T0 + dt.timedelta(seconds=13))


async def test_a_passed_deadline_the_sweep_could_not_take_is_not_the_next_one(
    engine: SagaEngine, db: AsyncEngine, clock: Clock
) -> None:
    """A saga another worker holds stays overdue; answering its deadline would make the
    sweeper spin until that worker lets go."""
    held = await start(engine, "member-withdrawal", {"member_id": "a"})
    clock.now = T0 + dt.timedelta(seconds=5)
    await start(engine, "member-withdrawal", {"member_id": "b"})
    clock.now = T0 + dt.timedelta(seconds=11)
    async with db.connect() as other_worker:
        await other_worker.begin()
        await other_worker.execute(
            text("SELECT id FROM saga_instances WHERE id = :id FOR UPDATE"), {"id": held}
        )
        assert await engine.sweep_until_next() == (0, T0 + dt.timedelta(seconds=15))
        await other_worker.rollback()


async def test_the_engine_announces_each_deadline_it_commits(
    engine: SagaEngine, clock: Clock
) -> None:
    announced: list[dt.datetime] = []
    engine.on_deadline = announced.append
    saga_id = await start(engine, "member-withdrawal", {"member_id": "m"})
    clock.now = T0 + dt.timedelta(seconds=1)
    reply = SagaReply(
        saga_id=saga_id,
        step="start-withdrawal",
        command="StartWithdrawal",
        attempt=1,
        outcome=Outcome.SUCCESS,
    )
    await engine.handle_reply(
        Envelope.new("SagaReply", "member", reply.model_dump(mode="json"), key=saga_id)
    )
    assert announced == [clock.now + STEP]  # the next step's deadline, after the commit
    clock.now = T0 + dt.timedelta(seconds=12)  # that step timed out: compensation
    await engine.sweep()
    assert announced[1:] == [clock.now + STEP]
