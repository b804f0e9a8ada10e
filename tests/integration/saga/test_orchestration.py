"""The saga worker in-process, with stand-in participants, over real Kafka and PostgreSQL:
replies advance sagas, failures compensate in reverse, timeouts, FAILED + DLQ + operator replay,
duplicate replies, and recovery after a lost command or a long downtime."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import func, select, update

from chassis.db import create_engine, create_session_factory, inbox_table, outbox_table
from chassis.lifecycle import Runtime
from chassis.messaging.envelope import Envelope, from_consumer_record
from chassis.resources import Resources
from saga.bootstrap import build_engine, build_worker
from saga.config import Settings
from saga.engine import SagaEngine
from saga.store import saga_instances
from tests.integration.saga.conftest import make_settings, running
from tests.integration.saga.helpers import metric, start, wait_for_status
from tests.integration.saga.standins import StandIns
from tests.support.infra import REPO, Infra, wait_for
from tests.support.kafka import read_topic, send_envelope

pytestmark = pytest.mark.integration

ACCEPTANCE = {
    "question_id": str(uuid.uuid4()),
    "answer_id": str(uuid.uuid4()),
    "asker_id": str(uuid.uuid4()),
    "answerer_id": str(uuid.uuid4()),
    "bounty": 10,
}


def engine_of(settings: Settings) -> tuple[SagaEngine, Resources]:
    """An engine over the saga database without a worker (the api's view)."""
    res = Resources(settings, Runtime("saga-test"))
    res.engine = create_engine(settings.DATABASE_URL, pool_size=2)
    res.session_factory = create_session_factory(res.engine)
    return build_engine(settings, res), res


async def test_member_withdrawal_runs_through_every_participant(
    settings: Settings, standins: StandIns
) -> None:
    async with running(build_worker(settings)) as worker:
        engine: SagaEngine = worker.state.engine
        member = str(uuid.uuid4())
        saga_id = await start(engine, "member-withdrawal", {"member_id": member})
        state = await wait_for_status(engine, saga_id, "COMPLETED")
    assert [s.status for s in state.steps] == ["SUCCEEDED"] * 4
    assert await standins.member.applied(saga_id) == ["StartWithdrawal", "CompleteWithdrawal"]
    assert await standins.board.applied(saga_id) == ["AnonymizeAuthor"]
    assert await standins.qna.applied(saga_id) == ["RetireAuthor"]
    assert await standins.board.payload(saga_id, "AnonymizeAuthor") == {"member_id": member}


async def test_answer_acceptance_transfers_the_bounty_the_reservation_reports(
    settings: Settings, standins: StandIns
) -> None:
    standins.qna.results["ReserveAcceptance"] = {
        "bounty": 70,
        "asker_id": ACCEPTANCE["asker_id"],
        "answerer_id": ACCEPTANCE["answerer_id"],
    }
    async with running(build_worker(settings)) as worker:
        engine: SagaEngine = worker.state.engine
        saga_id = await start(engine, "answer-acceptance", ACCEPTANCE)
        await wait_for_status(engine, saga_id, "COMPLETED")
    assert await standins.qna.applied(saga_id) == ["ReserveAcceptance", "ConfirmAcceptance"]
    assert await standins.member.payload(saga_id, "TransferPoints") == {
        "from_member_id": ACCEPTANCE["asker_id"],
        "to_member_id": ACCEPTANCE["answerer_id"],
        "amount": 70,
        "question_id": ACCEPTANCE["question_id"],
    }


async def test_a_refused_step_is_undone_in_reverse_by_each_participant(
    settings: Settings, standins: StandIns
) -> None:
    standins.qna.refuse.add("RetireAuthor")
    compensated_before = metric("saga_compensated_total", type="member-withdrawal")
    async with running(build_worker(settings)) as worker:
        engine: SagaEngine = worker.state.engine
        saga_id = await start(engine, "member-withdrawal", {"member_id": str(uuid.uuid4())})
        state = await wait_for_status(engine, saga_id, "COMPENSATED")
    assert [s.status for s in state.steps] == ["COMPENSATED", "COMPENSATED", "FAILED", "PENDING"]
    assert (
        state.failure_reason == "step retire-author (RetireAuthor) failed: qna refuses RetireAuthor"
    )
    assert await standins.board.applied(saga_id) == ["AnonymizeAuthor", "RestoreAuthor"]
    assert await standins.member.applied(saga_id) == ["StartWithdrawal", "CancelWithdrawal"]
    assert await standins.qna.applied(saga_id) == []
    assert metric("saga_compensated_total", type="member-withdrawal") == compensated_before + 1


async def test_a_slow_step_times_out_and_is_compensated_and_its_late_reply_is_ignored(
    infra: Infra, saga_database: str, topics: str, standins: StandIns
) -> None:
    settings = make_settings(infra, saga_database, topics, STEP_TIMEOUT_SECONDS=2)
    standins.board.delay["AnonymizeAuthor"] = 3.5
    async with running(build_worker(settings)) as worker:
        engine: SagaEngine = worker.state.engine
        saga_id = await start(engine, "member-withdrawal", {"member_id": str(uuid.uuid4())})
        state = await wait_for_status(engine, saga_id, "COMPENSATED")
    assert [s.status for s in state.steps] == ["COMPENSATED", "COMPENSATED", "PENDING", "PENDING"]
    assert "anonymize-author (AnonymizeAuthor) timed out after 2s" in (state.failure_reason or "")
    # the slow command was applied after all, then undone; qna never heard of the saga
    assert await standins.board.applied(saga_id) == ["AnonymizeAuthor", "RestoreAuthor"]
    assert await standins.qna.applied(saga_id) == []


async def test_a_compensation_that_keeps_failing_ends_failed_in_the_dlq_until_replayed(
    settings: Settings, standins: StandIns, infra: Infra, topics: str
) -> None:
    standins.board.refuse.add("AnonymizeAuthor")
    standins.member.refuse.add("CancelWithdrawal")
    failed_before = metric("saga_failed_total", type="member-withdrawal")
    async with running(build_worker(settings)) as worker:
        engine: SagaEngine = worker.state.engine
        saga_id = await start(engine, "member-withdrawal", {"member_id": str(uuid.uuid4())})
        state = await wait_for_status(engine, saga_id, "FAILED")
        assert [s.status for s in state.steps] == [
            "COMPENSATION_FAILED",
            "FAILED",
            "PENDING",
            "PENDING",
        ]
        assert "CancelWithdrawal of step start-withdrawal failed after 3 attempts" in (
            state.failure_reason or ""
        )
        assert metric("saga_failed_total", type="member-withdrawal") == failed_before + 1
        [parked] = await read_topic(
            infra.kafka_bootstrap, f"{topics}saga.member.commands.dlq", min_count=1
        )
        envelope = from_consumer_record(parked)
        assert envelope.type == "CancelWithdrawal"
        assert envelope.data["attempt"] == 4
        assert "failed after 3 attempts" in envelope.extensions["dlq_error"]
        assert envelope.extensions["dlq_original_topic"] == f"{topics}saga.member.commands"

        # the operator fixes the cause and replays the parked command with the ops CLI
        standins.member.refuse.clear()
        await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-c",
                "from chassis.cli import main; main()",
                "dlq",
                "replay",
                "saga.member.commands",
            ],
            env={
                **os.environ,
                "KAFKA_TOPIC_PREFIX": topics,
                "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
            },
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        state = await wait_for_status(engine, saga_id, "COMPENSATED")
    assert next(s.status for s in state.steps) == "COMPENSATED"
    assert await standins.member.applied(saga_id) == ["StartWithdrawal", "CancelWithdrawal"]


async def test_duplicate_replies_change_nothing(
    settings: Settings, standins: StandIns, infra: Infra, topics: str
) -> None:
    async with running(build_worker(settings)) as worker:
        engine: SagaEngine = worker.state.engine
        saga_id = await start(engine, "answer-acceptance", ACCEPTANCE)
        await wait_for_status(engine, saga_id, "COMPLETED")
        replies = await read_topic(infra.kafka_bootstrap, f"{topics}saga.replies", min_count=3)
        for record in replies:  # every reply again, once as the same message and once as a new one
            same = from_consumer_record(record)
            await send_envelope(infra.kafka_bootstrap, record.topic, same)
            await send_envelope(
                infra.kafka_bootstrap,
                record.topic,
                Envelope.new(same.type, same.source, same.data, key=saga_id),
            )
        marker = Envelope.new(
            "SagaReply", "test", {**same.data, "saga_id": str(uuid.uuid4())}, key="x"
        )
        await send_envelope(infra.kafka_bootstrap, f"{topics}saga.replies", marker)

        db = create_engine(settings.DATABASE_URL, pool_size=1)

        async def marker_consumed() -> (
            bool
        ):  # replies are consumed in order: the duplicates are done
            async with db.connect() as conn:
                found = await conn.scalar(
                    select(inbox_table.c.message_id).where(inbox_table.c.message_id == marker.id)
                )
                return found is not None

        await wait_for(marker_consumed, timeout=30, message="the marker reply")
        await db.dispose()
        stored = await engine.get(saga_id)
    assert stored is not None
    assert stored.state.status.value == "COMPLETED"
    assert await standins.member.applied(saga_id) == ["TransferPoints"]  # the points moved once
    assert await standins.qna.applied(saga_id) == ["ReserveAcceptance", "ConfirmAcceptance"]


async def test_a_restarted_worker_resends_a_command_that_was_lost(
    settings: Settings, standins: StandIns
) -> None:
    engine, res = engine_of(settings)
    saga_id = await start(engine, "member-withdrawal", {"member_id": str(uuid.uuid4())})
    assert res.engine is not None
    async with res.engine.begin() as conn:  # "published", but it never reached Kafka
        await conn.execute(update(outbox_table).values(published_at=func.now()))
    await res.engine.dispose()
    async with running(build_worker(settings)) as worker:
        state = await wait_for_status(worker.state.engine, saga_id, "COMPLETED")
    assert [s.status for s in state.steps] == ["SUCCEEDED"] * 4
    assert await standins.member.applied(saga_id) == ["StartWithdrawal", "CompleteWithdrawal"]


async def test_a_saga_whose_deadline_passed_while_no_worker_ran_is_resumed_not_timed_out(
    settings: Settings, standins: StandIns
) -> None:
    engine, res = engine_of(settings)
    saga_id = await start(engine, "member-withdrawal", {"member_id": str(uuid.uuid4())})
    assert res.engine is not None
    async with res.engine.begin() as conn:
        await conn.execute(update(saga_instances).values(deadline=saga_instances.c.started_at))
    await res.engine.dispose()
    async with running(build_worker(settings)) as worker:
        state = await wait_for_status(worker.state.engine, saga_id, "COMPLETED")
    assert [s.status for s in state.steps] == ["SUCCEEDED"] * 4
