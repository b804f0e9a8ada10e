"""The engine against real PostgreSQL: one transaction per event, the semantic lock, the inbox,
SKIP LOCKED sweeping and the recovery re-send."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.db import idempotency_table, outbox_table
from chassis.idempotency import IdempotentRequest
from chassis.messaging.envelope import Envelope
from chassis.problems import Conflict, NotFound, Unprocessable
from chassis.saga import Outcome, SagaReply
from saga.definitions import MEMBER_WITHDRAWAL
from saga.engine import SagaEngine
from saga.store import saga_instances, saga_steps
from tests.integration.saga.helpers import T0, Clock, start

pytestmark = pytest.mark.integration


async def outbox(db: AsyncEngine) -> list[Any]:
    async with db.connect() as conn:
        return list(await conn.execute(select(outbox_table).order_by(outbox_table.c.seq)))


def reply_envelope(saga_id: str, step: str, command: str, outcome: Outcome) -> Envelope:
    reply = SagaReply(saga_id=saga_id, step=step, command=command, attempt=1, outcome=outcome)
    return Envelope.new("SagaReply", "member", reply.model_dump(mode="json"), key=saga_id)


async def test_a_start_stores_the_saga_its_step_log_and_its_first_command_together(
    engine: SagaEngine, db: AsyncEngine
) -> None:
    member = str(uuid.uuid4())
    saga_id = await start(engine, "member-withdrawal", {"member_id": member})
    async with db.connect() as conn:
        row = (await conn.execute(select(saga_instances))).one()
        steps = list(await conn.execute(select(saga_steps).order_by(saga_steps.c.position)))
    assert (str(row.id), row.status, row.current_step, row.lock_key) == (
        saga_id,
        "RUNNING",
        "start-withdrawal",
        member,
    )
    assert row.deadline == T0 + dt.timedelta(seconds=10)
    assert [(s.name, s.forward_status, s.compensation) for s in steps] == [
        ("start-withdrawal", "RUNNING", "CancelWithdrawal"),
        ("anonymize-author", "PENDING", "RestoreAuthor"),
        ("retire-author", "PENDING", "RestoreAuthor"),
        ("complete-withdrawal", "PENDING", None),
    ]
    [message] = await outbox(db)
    assert (message.topic, message.type, message.key) == (
        "saga.member.commands",
        "StartWithdrawal",
        saga_id,
    )
    assert message.payload["payload"] == {"member_id": member}
    assert message.payload["attempt"] == 1
    assert row.command_message_id == message.id


async def test_a_start_whose_data_cannot_be_loaded_stores_nothing(
    engine: SagaEngine, db: AsyncEngine
) -> None:
    async def refused() -> dict[str, Any]:
        raise NotFound("no such question")

    with pytest.raises(NotFound):
        await engine.start(
            "answer-acceptance",
            uuid.uuid4(),
            refused,
            request=IdempotentRequest("scope", "key-1", "fp"),
        )
    async with db.connect() as conn:
        for table in (saga_instances, outbox_table, idempotency_table):
            assert await conn.scalar(select(func.count()).select_from(table)) == 0


async def test_one_running_withdrawal_per_member(engine: SagaEngine, db: AsyncEngine) -> None:
    member = str(uuid.uuid4())
    first = await start(engine, "member-withdrawal", {"member_id": member})
    with pytest.raises(Conflict):
        await start(engine, "member-withdrawal", {"member_id": member})
    await start(engine, "member-withdrawal", {"member_id": str(uuid.uuid4())})  # another member
    # the partial unique index holds even when the friendly check is bypassed
    async with db.begin() as conn:
        values = dict((await conn.execute(select(saga_instances).limit(1))).one()._mapping)
    with pytest.raises(IntegrityError):
        async with db.begin() as conn:
            await conn.execute(saga_instances.insert().values({**values, "id": uuid.uuid4()}))
    # once the first has ended, the member may try again
    async with db.begin() as conn:
        await conn.execute(
            update(saga_instances)
            .where(saga_instances.c.id == uuid.UUID(first))
            .values(status="COMPENSATED")
        )
    await start(engine, "member-withdrawal", {"member_id": member})


async def test_a_completed_withdrawal_takes_the_member_for_good(
    engine: SagaEngine, db: AsyncEngine
) -> None:
    """A withdrawn member keeps withdrawing: a second DELETE after completion started a new saga
    that ended COMPENSATED. member-withdrawal is ``once_per_key``: after a COMPLETED one, a new
    start gets 409 and stores nothing; a COMPENSATED or FAILED one does not take the key."""
    member = str(uuid.uuid4())

    async def end(saga_id: str, status: str) -> None:
        async with db.begin() as conn:
            await conn.execute(
                update(saga_instances)
                .where(saga_instances.c.id == uuid.UUID(saga_id))
                .values(status=status)
            )

    await end(await start(engine, "member-withdrawal", {"member_id": member}), "COMPENSATED")
    await end(await start(engine, "member-withdrawal", {"member_id": member}), "FAILED")
    await end(await start(engine, "member-withdrawal", {"member_id": member}), "COMPLETED")
    async with db.connect() as conn:
        before = await conn.scalar(select(func.count()).select_from(saga_instances))
    with pytest.raises(Conflict, match="already completed"):
        await start(engine, "member-withdrawal", {"member_id": member})
    async with db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(saga_instances)) == before
        assert [m.type for m in await outbox(db)].count("StartWithdrawal") == 3
    await start(engine, "member-withdrawal", {"member_id": str(uuid.uuid4())})  # another member


async def test_a_retried_request_returns_the_first_saga(
    engine: SagaEngine, db: AsyncEngine
) -> None:
    calls = 0

    async def load() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"member_id": str(uuid.uuid4())}

    request = IdempotentRequest("saga:withdraw:me", "k-1", "fp-1")
    first = await engine.start("member-withdrawal", uuid.uuid4(), load, request=request)
    again = await engine.start("member-withdrawal", uuid.uuid4(), load, request=request)
    assert again == first
    assert calls == 1  # the retry did not even run the pre-check
    with pytest.raises(Unprocessable):
        await engine.start(
            "member-withdrawal",
            uuid.uuid4(),
            load,
            request=IdempotentRequest("saga:withdraw:me", "k-1", "other"),
        )
    async with db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(saga_instances)) == 1


async def test_a_reply_is_applied_once(engine: SagaEngine, db: AsyncEngine) -> None:
    saga_id = await start(engine, "member-withdrawal", {"member_id": "m"})
    success = reply_envelope(saga_id, "start-withdrawal", "StartWithdrawal", Outcome.SUCCESS)
    await engine.handle_reply(success)
    await engine.handle_reply(success)  # redelivered: the inbox drops it
    same_reply_new_message = Envelope.new("SagaReply", "member", success.data, key=saga_id)
    await engine.handle_reply(same_reply_new_message)  # not the awaited reply any more
    stored = await engine.get(saga_id)
    assert stored is not None
    assert [s.status for s in stored.state.steps] == ["SUCCEEDED", "RUNNING", "PENDING", "PENDING"]
    assert [m.type for m in await outbox(db)] == ["StartWithdrawal", "AnonymizeAuthor"]


async def test_a_reply_for_an_unknown_saga_is_recorded_and_ignored(engine: SagaEngine) -> None:
    await engine.handle_reply(
        reply_envelope(str(uuid.uuid4()), "start-withdrawal", "StartWithdrawal", Outcome.SUCCESS)
    )
    await engine.handle_reply(
        reply_envelope("not-a-uuid", "start-withdrawal", "StartWithdrawal", Outcome.SUCCESS)
    )


async def test_a_malformed_reply_raises_so_the_consumer_dead_letters_it(engine: SagaEngine) -> None:
    with pytest.raises(ValueError, match="malformed saga reply"):
        await engine.handle_reply(Envelope.new("SagaReply", "x", {"saga_id": "s"}, key="s"))


async def test_the_sweeper_skips_a_saga_another_worker_holds_then_times_it_out(
    engine: SagaEngine, db: AsyncEngine, clock: Clock
) -> None:
    saga_id = await start(engine, "member-withdrawal", {"member_id": "m"})
    clock.now = T0 + dt.timedelta(seconds=11)
    async with db.connect() as other_worker:
        await other_worker.begin()
        await other_worker.execute(
            text("SELECT id FROM saga_instances WHERE id = :id FOR UPDATE"), {"id": saga_id}
        )
        assert await engine.sweep() == 0
        await other_worker.rollback()
    assert await engine.sweep() == 1
    stored = await engine.get(saga_id)
    assert stored is not None
    assert stored.state.status.value == "COMPENSATING"
    assert stored.state.steps[0].status == "COMPENSATING"
    assert [m.type for m in await outbox(db)] == ["StartWithdrawal", "CancelWithdrawal"]
    assert await engine.sweep() == 0  # the compensation has a fresh deadline


async def test_recovery_resends_only_commands_that_left_the_outbox_and_postpones_deadlines(
    engine: SagaEngine, db: AsyncEngine, clock: Clock
) -> None:
    unsent = await start(engine, "member-withdrawal", {"member_id": "a"})
    sent = await start(engine, "member-withdrawal", {"member_id": "b"})
    async with db.begin() as conn:
        message_id = await conn.scalar(
            select(saga_instances.c.command_message_id).where(
                saga_instances.c.id == uuid.UUID(sent)
            )
        )
        await conn.execute(
            update(outbox_table).where(outbox_table.c.id == message_id).values(published_at=T0)
        )
    clock.now = T0 + dt.timedelta(seconds=60)  # the worker was down for a minute
    assert await engine.recover() == 1
    messages = await outbox(db)
    assert [(m.key, m.type, m.payload["attempt"]) for m in messages] == [
        (unsent, "StartWithdrawal", 1),
        (sent, "StartWithdrawal", 1),
        (sent, "StartWithdrawal", 1),  # the re-send: same attempt, so participants deduplicate
    ]
    for saga_id in (unsent, sent):
        stored = await engine.get(saga_id)
        assert stored is not None
        assert stored.state.deadline == clock.now + dt.timedelta(seconds=10)
    assert await engine.sweep() == 0  # nothing timed out because of the downtime


async def test_the_in_flight_gauge_counts_running_sagas(engine: SagaEngine) -> None:
    from tests.integration.saga.helpers import metric

    await start(engine, MEMBER_WITHDRAWAL.name, {"member_id": "x"})
    await engine.refresh_in_flight()
    assert metric("saga_in_flight", type="member-withdrawal") == 1
    assert metric("saga_in_flight", type="answer-acceptance") == 0


async def test_the_overdue_gauge_counts_in_flight_sagas_no_sweep_moved_on_past_their_deadline(
    engine: SagaEngine, clock: Clock
) -> None:
    from saga.metrics import OVERDUE_AFTER_SECONDS
    from tests.integration.saga.helpers import metric

    await start(engine, MEMBER_WITHDRAWAL.name, {"member_id": "x"})  # deadline T0 + 10 s
    deadline = T0 + dt.timedelta(seconds=10)
    clock.now = deadline + dt.timedelta(seconds=OVERDUE_AFTER_SECONDS - 1)
    await engine.refresh_in_flight()
    assert metric("saga_overdue", type="member-withdrawal") == 0  # late, not yet stuck
    clock.now = deadline + dt.timedelta(seconds=OVERDUE_AFTER_SECONDS + 1)
    await engine.refresh_in_flight()  # no sweep ran: the saga is still past its deadline
    assert metric("saga_overdue", type="member-withdrawal") == 1
    assert metric("saga_overdue", type="answer-acceptance") == 0
    await engine.sweep()  # the timeout is applied: a new deadline (a re-send or compensation)
    await engine.refresh_in_flight()
    assert metric("saga_overdue", type="member-withdrawal") == 0


async def test_a_timed_out_pivot_is_resent_its_retries_stored_counted_and_recovered(
    engine: SagaEngine, db: AsyncEngine, clock: Clock
) -> None:
    from tests.integration.saga.helpers import metric

    counted = metric(
        "saga_step_retries_total",
        saga_type="member-withdrawal",
        step="complete-withdrawal",
        reason="timeout",
    )
    saga_id = await start(engine, "member-withdrawal", {"member_id": "m"})
    for step, command in (
        ("start-withdrawal", "StartWithdrawal"),
        ("anonymize-author", "AnonymizeAuthor"),
        ("retire-author", "RetireAuthor"),
    ):
        await engine.handle_reply(reply_envelope(saga_id, step, command, Outcome.SUCCESS))
    clock.now = T0 + dt.timedelta(seconds=11)
    assert await engine.sweep() == 1
    clock.now = T0 + dt.timedelta(seconds=32)  # the re-send's deadline is 20 s
    assert await engine.sweep() == 1

    stored = await engine.get(saga_id)
    assert stored is not None
    assert stored.state.status.value == "RUNNING"
    assert stored.state.steps[3].retries == 2
    assert stored.state.deadline == clock.now + dt.timedelta(seconds=40)
    async with db.connect() as conn:
        retries = await conn.scalar(
            select(saga_steps.c.retries).where(
                saga_steps.c.saga_id == uuid.UUID(saga_id), saga_steps.c.position == 3
            )
        )
    assert retries == 2
    assert (
        metric(
            "saga_step_retries_total",
            saga_type="member-withdrawal",
            step="complete-withdrawal",
            reason="timeout",
        )
        == counted + 2
    )
    sent = [(m.type, m.payload["attempt"]) for m in await outbox(db) if m.key == saga_id]
    assert sent[-3:] == [("CompleteWithdrawal", 1)] * 3  # never a compensation

    async with db.begin() as conn:  # every command left the outbox; then the worker restarts
        await conn.execute(update(outbox_table).values(published_at=T0))
    assert await engine.recover() == 1
    sent = [(m.type, m.payload["attempt"]) for m in await outbox(db) if m.key == saga_id]
    assert sent[-1] == ("CompleteWithdrawal", 1)
    await engine.handle_reply(
        reply_envelope(saga_id, "complete-withdrawal", "CompleteWithdrawal", Outcome.SUCCESS)
    )
    stored = await engine.get(saga_id)
    assert stored is not None
    assert stored.state.status.value == "COMPLETED"
