"""Walkthrough fail-saga-step: a refused pivot makes the saga compensate; silence after the pivot makes it re-send, never compensate (saga, pivot, retriable step)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.chaos.load import Load
from tools.chaos.sagas import TERMINAL, fault_reached, poll, step_fault_outcome
from tools.walkthrough.guide import Guide

NAME = "fail-saga-step"
SUMMARY = (
    "The answer-acceptance saga runs three steps: reserve-acceptance on qna (compensatable: it "
    "can be undone), transfer-points on member (the pivot: once it succeeds the saga must "
    "finish) and confirm-acceptance on qna (retriable: it cannot be refused, only waited for). "
    "First we make member refuse TransferPoints: the saga compensates, qna cancels the "
    "reservation. Then we delay ConfirmAcceptance past the step timeout: the orchestrator "
    "cannot tell a slow participant from a lost command, and after the pivot it may not undo "
    "anything, so it sends the command again and the saga still completes."
)
ACCEPTANCE = "answer-acceptance"


def delay_seconds(step_timeout: float) -> float:
    """How long ConfirmAcceptance is held: past the step timeout by up to 5 s (double a short
    timeout), so that the timeout fires once and the walkthrough stays under a minute even
    with the orchestrator's default of 30 s."""
    return step_timeout + min(step_timeout, 5.0)


async def start_acceptance(load: Load) -> str | None:
    """A fresh question with one answer, accepted by its asker: the saga's id."""
    asker, answerer = load.world.members[0], load.world.members[1]
    await load.ask(asker)
    question = load.world.questions[-1]
    await load.answer(answerer, question)
    load.world.questions = [question]  # accept exactly this one
    return await load.accept()


async def run(guide: Guide, load: Load) -> None:
    await load.prepare(5, hot_posts=0)
    timeout = guide.target.step_timeout_seconds()
    await refused_pivot(guide, load)
    guide.wait()
    await delayed_after_pivot(guide, load, timeout)


async def refused_pivot(guide: Guide, load: Load) -> None:
    guide.say(
        "Part 1. Set the fault flag faults:member:transfer-points to `fail` through the admin "
        "API (PUT /api/admin/faults/member/transfer-points): member answers the command with a "
        "refusal, as it would for a business rule."
    )
    await load.set_fault("member", "transfer-points", "fail")
    guide.do("fault member/transfer-points = fail")
    try:
        saga_id = await start_acceptance(load)
        if saga_id is None:
            guide.fail("the acceptance was not started (POST .../accept)")
            return
        guide.do(f"acceptance saga {saga_id} started")
        body = await ended(load, saga_id, 60)
    finally:
        await load.set_fault("member", "transfer-points", "off")
        guide.do("fault member/transfer-points = off")
    if body is None:
        guide.fail(f"saga {saga_id} did not end within 60 s")
        return
    guide.saga(body)
    guide.logs("saga-worker", f"{saga_id}.*(step_failed|compensat)", "the compensation")
    guide.metric(
        "saga-worker",
        "saga_compensated_total",
        "sagas that undid their completed steps",
        type=ACCEPTANCE,
    )
    problems = step_fault_outcome(body, "transfer-points", "fail")
    guide.check(
        not problems,
        "refused pivot: COMPENSATED, transfer-points FAILED, reserve-acceptance COMPENSATED"
        + (f" ({'; '.join(problems)})" if problems else ""),
    )


async def delayed_after_pivot(guide: Guide, load: Load, timeout: float) -> None:
    delay = delay_seconds(timeout)
    guide.say(
        f"Part 2. This stack's step timeout is {timeout:g} s (STEP_TIMEOUT_SECONDS; the "
        "orchestrator's default is 30 s, the fault suite starts its stack with 3 s, and "
        "`STEP_TIMEOUT_SECONDS=5 make run` shortens it here too). Set "
        f"faults:qna:confirm-acceptance to `delay` {delay:g} s: qna holds the command that "
        "long before it applies it and replies. Expect the saga to wait through the pivot, "
        f"time out on confirm-acceptance after {timeout:g} s, re-send it (retries 1) and "
        "complete when the reply comes, without compensating."
    )
    await load.set_fault("qna", "confirm-acceptance", "delay", int(delay * 1000))
    guide.do(f"fault qna/confirm-acceptance = delay {delay:g} s")
    try:
        saga_id = await start_acceptance(load)
        if saga_id is None:
            guide.fail("the acceptance was not started (POST .../accept)")
            return
        guide.do(f"acceptance saga {saga_id} started; waiting for the step timeout")
        seen, _ = await poll(
            load, [saga_id], lambda b: fault_reached(b, "confirm-acceptance", "delay"), delay + 30
        )
        if saga_id in seen:
            guide.saga(seen[saga_id])
    finally:
        await load.set_fault("qna", "confirm-acceptance", "off")
        guide.do("fault qna/confirm-acceptance = off")
    body = await ended(load, saga_id, delay + 30)
    if body is None:
        guide.fail(f"saga {saga_id} did not end within {delay + 30:g} s of the re-send")
        return
    guide.saga(body)
    guide.logs("saga-worker", f"{saga_id}.*(step_retry|completed)", "the re-send")
    guide.metric(
        "saga-worker",
        "saga_step_retries_total",
        "commands sent again after a timeout",
        step="confirm-acceptance",
        reason="timeout",
    )
    problems = step_fault_outcome(body, "confirm-acceptance", "delay")
    guide.check(
        not problems,
        "silence after the pivot: COMPLETED, confirm-acceptance re-sent (retries >= 1),"
        " nothing compensated" + (f" ({'; '.join(problems)})" if problems else ""),
    )


async def ended(load: Load, saga_id: str, timeout: float) -> Mapping[str, Any] | None:
    """The saga's body once it is terminal, or None after ``timeout`` seconds."""
    bodies, waiting = await poll(load, [saga_id], lambda b: b["status"] in TERMINAL, timeout)
    return None if waiting else bodies[saga_id]
