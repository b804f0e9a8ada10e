"""Crashes, duplicates and a compensation that keeps failing, against the real processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from chassis.db import create_engine, inbox_table
from chassis.messaging.envelope import Envelope, from_consumer_record
from tests.support.infra import REPO, Infra
from tests.support.kafka import read_topic, send_envelope
from tests.system.saga.client import SagaStackClient, eventually
from tests.system.saga.stack import Stack

pytestmark = pytest.mark.system


def log_events(stack: Stack, process: str, saga_id: str) -> list[dict[str, object]]:
    lines = [json.loads(ln) for ln in stack.logs(process).splitlines() if ln.startswith("{")]
    return [ln for ln in lines if ln.get("saga_id") == saga_id]


async def saga_records(infra: Infra, stack: Stack, topic: str, saga_id: str) -> list[Envelope]:
    records = await read_topic(infra.kafka_bootstrap, f"{stack.prefix}{topic}", timeout=2)
    envelopes = [from_consumer_record(r) for r in records]
    return [e for e in envelopes if e.key == saga_id]


def ops_cli(stack: Stack, infra: Infra, *args: str) -> str:
    """``chassis dlq ...``, the operator's tool, on the stack's topics."""
    result = subprocess.run(
        [sys.executable, "-c", "from chassis.cli import main; main()", *args],
        env={
            **os.environ,
            "KAFKA_TOPIC_PREFIX": stack.prefix,
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


# --- crashes ------------------------------------------------------------------------------


async def test_a_killed_orchestrator_resumes_the_saga_after_its_restart(
    client: SagaStackClient, stack: Stack
) -> None:
    member = await client.sign_up()
    post = await client.write_post(member)
    await client.set_fault("board", "anonymize-author", "delay", 3000)
    saga_id = await client.withdraw(member)
    await client.wait_step(saga_id, "anonymize-author", "RUNNING")

    stack.kill("saga-worker")  # between step 1 and step 2's reply
    await asyncio.to_thread(stack.start, "saga-worker")

    saga = await client.wait_saga(saga_id, "COMPLETED", timeout=120)
    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 4
    assert (await client.member(member.id))["status"] == "WITHDRAWN"
    assert (await client.post(post))["author"]["id"] is None
    assert any(e["event"] == "saga.recovered" for e in _all_events(stack, "saga-worker"))


async def test_sagas_survive_the_orchestrator_being_killed_at_arbitrary_moments(
    client: SagaStackClient, stack: Stack
) -> None:
    pairs = [(await client.sign_up(), await client.sign_up()) for _ in range(4)]
    questions = []
    for asker, answerer in pairs:
        question = await client.ask(asker, bounty=10)
        questions.append((question, await client.answer(answerer, question)))

    stack.kill("saga-worker")  # sagas start while no orchestrator runs: commands wait in the outbox
    saga_ids = [
        await client.accept(asker, q, a)
        for (asker, _), (q, a) in zip(pairs, questions, strict=True)
    ]
    await asyncio.to_thread(stack.start, "saga-worker")
    stack.kill("saga-worker")  # and again, somewhere in the middle
    await asyncio.to_thread(stack.start, "saga-worker")

    for saga_id in saga_ids:
        await client.wait_saga(saga_id, "COMPLETED", timeout=120)
    for asker, answerer in pairs:  # each bounty moved exactly once
        assert (await client.member(asker.id))["points"] == 90
        assert (await client.member(answerer.id))["points"] == 110


async def test_a_participant_worker_killed_mid_command_finishes_it_after_its_restart(
    client: SagaStackClient, stack: Stack
) -> None:
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=20)
    answer = await client.answer(answerer, question)
    await client.set_fault("member", "transfer-points", "delay", 5000)
    saga_id = await client.accept(asker, question, answer)
    await client.wait_step(saga_id, "transfer-points", "RUNNING")
    # the member worker is now holding TransferPoints (its consumer has not committed it)
    await asyncio.sleep(1)

    stack.kill("member-worker")
    await client.set_fault("member", "transfer-points", "off")
    await asyncio.to_thread(stack.start, "member-worker")

    saga = await client.wait_saga(saga_id, "COMPLETED", timeout=120)
    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 3
    assert (await client.member(asker.id))["points"] == 80
    assert (await client.member(answerer.id))["points"] == 120
    assert (await client.question(question))["status"] == "RESOLVED"


# --- duplicates ---------------------------------------------------------------------------


async def test_duplicate_commands_and_replies_move_the_points_once(
    client: SagaStackClient, stack: Stack, infra: Infra
) -> None:
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=25)
    answer = await client.answer(answerer, question)
    saga_id = await client.accept(asker, question, answer)
    await client.wait_saga(saga_id, "COMPLETED")
    member_commands = await saga_records(infra, stack, "saga.member.commands", saga_id)
    [transfer] = [c for c in member_commands if c.type == "TransferPoints"]
    replies = await saga_records(infra, stack, "saga.replies", saga_id)
    assert len(replies) == 3

    # the TransferPoints command again: redelivered as is, and sent again as a new message
    commands_topic = f"{stack.prefix}saga.member.commands"
    await send_envelope(infra.kafka_bootstrap, commands_topic, transfer)
    await send_envelope(
        infra.kafka_bootstrap,
        commands_topic,
        Envelope.new(transfer.type, "duplicate-test", transfer.data, key=saga_id),
    )

    async def member_answered_both() -> bool:  # from its command log, without a second effect
        return len(await saga_records(infra, stack, "saga.replies", saga_id)) == 5

    await eventually(member_answered_both, timeout=30, message="replies to the duplicates")

    # every reply again, as is and as new messages
    replies = await saga_records(infra, stack, "saga.replies", saga_id)
    resent = [Envelope.new(r.type, "duplicate-test", r.data, key=saga_id) for r in replies]
    for envelope in [*replies, *resent]:
        await send_envelope(infra.kafka_bootstrap, f"{stack.prefix}saga.replies", envelope)
    saga_db = create_engine(stack.databases["saga"], pool_size=1)

    async def orchestrator_read_them() -> bool:
        async with saga_db.connect() as conn:
            seen = await conn.scalar(
                select(func.count())
                .select_from(inbox_table)
                .where(inbox_table.c.message_id.in_([e.id for e in resent]))
            )
        return seen == len(resent)

    try:
        await eventually(orchestrator_read_them, timeout=30, message="the resent replies")
    finally:
        await saga_db.dispose()

    saga = await client.saga(saga_id)
    assert saga["status"] == "COMPLETED"
    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 3
    assert (await client.member(asker.id))["points"] == 75
    assert (await client.member(answerer.id))["points"] == 125
    for topic, commands in (("saga.member.commands", 1), ("saga.qna.commands", 2)):
        sent = await saga_records(infra, stack, topic, saga_id)
        assert len({c.id for c in sent if c.source == "saga"}) == commands  # none sent again


# --- a compensation that keeps failing ----------------------------------------------------


async def test_a_compensation_that_keeps_failing_ends_failed_visibly_until_an_operator_replays_it(
    client: SagaStackClient, stack: Stack, infra: Infra
) -> None:
    member = await client.sign_up()
    worker = stack.worker_url("saga")
    failed_before = await client.metric(worker, "saga_failed_total", type="member-withdrawal")
    await client.set_fault("board", "anonymize-author", "fail")
    await client.set_fault("member", "cancel-withdrawal", "fail")

    saga_id = await client.withdraw(member)
    saga = await client.wait_saga(saga_id, "FAILED")

    # visible in the API ...
    assert [s["status"] for s in saga["steps"]] == [
        "COMPENSATION_FAILED",
        "FAILED",
        "PENDING",
        "PENDING",
    ]
    assert (
        "CancelWithdrawal of step start-withdrawal failed after 3 attempts"
        in saga["failure_reason"]
    )
    assert saga["ended_at"] is not None
    # ... in the metrics ...
    assert (
        await client.metric(worker, "saga_failed_total", type="member-withdrawal")
        == failed_before + 1
    )
    # ... in the logs, at error level ...
    failed = [e for e in log_events(stack, "saga-worker", saga_id) if e["event"] == "saga.failed"]
    assert [e["level"] for e in failed] == ["error"]
    # ... and in the DLQ, where the operator's tool finds the compensation still owed
    parked = [
        json.loads(line)
        for line in ops_cli(stack, infra, "dlq", "list", "saga.member.commands").splitlines()
    ]
    [owed] = [p for p in parked if p["key"] == saga_id]
    assert owed["type"] == "CancelWithdrawal"
    assert "failed after 3 attempts" in owed["error"]
    assert (await client.member(member.id))["status"] == "WITHDRAWING"

    # the operator fixes the cause and replays it: the saga finishes compensating
    await client.set_fault("member", "cancel-withdrawal", "off")
    ops_cli(stack, infra, "dlq", "replay", "saga.member.commands", "--id", owed["id"])
    saga = await client.wait_saga(saga_id, "COMPENSATED")
    assert next(s["status"] for s in saga["steps"]) == "COMPENSATED"
    assert (await client.member(member.id))["status"] == "ACTIVE"


async def test_a_retriable_step_refused_to_the_limit_is_parked_and_a_replay_completes_the_saga(
    client: SagaStackClient, stack: Stack, infra: Infra
) -> None:
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=10)
    answer = await client.answer(answerer, question)
    await client.set_fault("qna", "confirm-acceptance", "fail")

    saga_id = await client.accept(asker, question, answer)
    saga = await client.wait_saga(saga_id, "FAILED")
    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    parked = [
        json.loads(line)
        for line in ops_cli(stack, infra, "dlq", "list", "saga.qna.commands").splitlines()
    ]
    [owed] = [p for p in parked if p["key"] == saga_id]
    assert owed["type"] == "ConfirmAcceptance"
    assert "refused 3 times" in owed["error"]

    # the operator fixes the cause and replays it: the saga resumes and completes
    await client.set_fault("qna", "confirm-acceptance", "off")
    ops_cli(stack, infra, "dlq", "replay", "saga.qna.commands", "--id", owed["id"])
    saga = await client.wait_saga(saga_id, "COMPLETED")
    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 3
    assert saga["failure_reason"] is None
    assert (await client.question(question))["status"] == "RESOLVED"
    assert (await client.member(asker.id))["points"] == 90
    assert (await client.member(answerer.id))["points"] == 110


def _all_events(stack: Stack, process: str) -> list[dict[str, object]]:
    return [json.loads(ln) for ln in stack.logs(process).splitlines() if ln.startswith("{")]
