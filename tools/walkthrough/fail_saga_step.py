"""Walkthrough fail-saga-step: a refused pivot makes the saga compensate; silence after the pivot makes it re-send, never compensate (saga, pivot, retriable step)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tools.chaos.load import Load
from tools.chaos.sagas import TERMINAL, fault_reached, step_fault_outcome
from tools.walkthrough.common import faults_on, until
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
    """A fresh question with one answer, accepted by its asker: the saga's id (the question
    is ``load.world.questions``' last, or None when it could not be asked)."""
    asker, answerer = load.world.members[0], load.world.members[1]
    await load.ask(asker)
    question = load.world.questions[-1]
    await load.answer(answerer, question)
    load.world.questions = [question]  # accept exactly this one
    saga_id = await load.accept()
    load.world.questions = [question]  # accept() takes it out of the pool; it is read later
    return saga_id


async def run(guide: Guide, load: Load) -> None:
    await load.prepare(5, hot_posts=0)
    guide.say(
        "Part 1. Set the fault flag faults:member:transfer-points to `fail` through the admin "
        "API (PUT /api/admin/faults/member/transfer-points): member answers the command with a "
        "refusal, as it would for a business rule."
    )
    await faulted_saga(
        guide,
        load,
        Fault("member", "transfer-points", "fail"),
        Watch("step_failed|compensat", "the compensation", "saga_compensated_total"),
        "refused pivot: COMPENSATED, transfer-points FAILED, reserve-acceptance COMPENSATED",
    )
    guide.wait()
    timeout = guide.target.step_timeout_seconds()
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
    await faulted_saga(
        guide,
        load,
        Fault("qna", "confirm-acceptance", "delay", delay),
        Watch("step_retry|completed", "the re-send", "saga_step_retries_total"),
        "silence after the pivot: COMPLETED, confirm-acceptance re-sent (retries >= 1),"
        " nothing compensated",
    )


@dataclass(frozen=True)
class Fault:
    """A step fault: ``mode`` ``fail`` or ``delay`` (by ``seconds``) on ``service/command``."""

    service: str
    command: str
    mode: str
    seconds: float = 0.0

    def __str__(self) -> str:
        held = f" {self.seconds:g} s" if self.mode == "delay" else ""
        return f"fault {self.service}/{self.command} = {self.mode}{held}"


@dataclass(frozen=True)
class Watch:
    """Where the saga's reaction shows: its log events, and a saga-worker metric."""

    events: str  # a regular expression of saga-worker's log events
    why: str
    metric: str


async def faulted_saga(guide: Guide, load: Load, fault: Fault, watch: Watch, expect: str) -> None:
    """Start an acceptance with ``fault`` set, lift it once the saga shows its effect, wait
    for the end and check it against the rules of the faulted step's kind."""
    # The re-send comes one step timeout after the command, the reply ``seconds`` after it.
    patience = fault.seconds + 30
    await load.set_fault(fault.service, fault.command, fault.mode, int(fault.seconds * 1000))
    guide.do(str(fault))
    states: list[str] = []
    try:
        saga_id = await start_acceptance(load)
        if saga_id is None:
            guide.fail("the acceptance was not started (POST .../accept)")
            return
        guide.do(f"acceptance saga {saga_id} started; each change of its state as read:")
        seen = await follow(
            guide,
            load,
            saga_id,
            lambda b: fault_reached(b, fault.command, fault.mode),
            patience,
            states,
        )
        if seen is not None and seen["status"] not in TERMINAL:
            guide.saga(seen)
    finally:
        await load.set_fault(fault.service, fault.command, "off")
        on = await faults_on(load)
        guide.put_back(
            on == [],
            f"fault {fault.service}/{fault.command} off (GET /api/admin/faults: none on)",
            f"fault flags still on: {on}; PUT /api/admin/faults/{fault.service}/{fault.command}"
            ' {"mode": "off"} as the admin',
        )
    body = await follow(guide, load, saga_id, lambda b: b["status"] in TERMINAL, patience, states)
    if body is None or body["status"] not in TERMINAL:
        guide.fail(f"saga {saga_id} did not end within {patience:g} s")
        return
    guide.saga(body)
    guide.logs("saga-worker", f"{saga_id}.*({watch.events})", watch.why)
    labels = {"step": fault.command} if fault.mode == "delay" else {"type": ACCEPTANCE}
    guide.metric("saga-worker", watch.metric, watch.why, **labels)
    problems = step_fault_outcome(body, fault.command, fault.mode)
    guide.check(not problems, expect + (f" ({'; '.join(problems)})" if problems else ""))
    # The semantic lock: ACCEPTING while the saga ran, released to OPEN by the compensation
    # (another answer may be accepted) or to RESOLVED by the last step.
    question = load.world.questions[-1]
    wanted = "RESOLVED" if body["status"] == "COMPLETED" else "OPEN"
    status: str | None = None

    async def released() -> bool:
        nonlocal status
        read = await load.call("question", "GET", f"/api/questions/{question.id}", 200)
        status = read["status"] if read else None
        return status == wanted

    await until(released, 10)
    guide.look(
        f"the question: GET {guide.target.gateway_url}/api/questions/{question.id}",
        f"status {status}",
    )
    guide.check(status == wanted, f"the question's lock released: {status}, expected {wanted}")


async def follow(
    guide: Guide,
    load: Load,
    saga_id: str,
    done: Callable[[Mapping[str, Any]], bool],
    timeout: float,
    states: list[str],
) -> Mapping[str, Any] | None:
    """Read the saga and its question every 0.2 s until ``done(saga)`` holds or ``timeout``
    seconds pass, printing each change of state (the last is ``states[-1]``, kept across
    calls): the saga's status and steps, the question's status (its semantic lock). A state
    that lasts less than one read (a quick COMPENSATING) may pass unseen. The last saga
    read, or None."""
    question = load.world.questions[-1]
    deadline = time.monotonic() + timeout
    body: Mapping[str, Any] | None = None
    while True:
        body = await load.saga(saga_id) or body
        read = await load.call("question", "GET", f"/api/questions/{question.id}", 200)
        if body is not None:
            steps = ", ".join(f"{s['name']} {s['status']}" for s in body["steps"])
            state = f"saga {body['status']:<12} {steps}; question {read['status'] if read else '?'}"
            if not states or states[-1] != state:
                states.append(state)
                guide.do(state)
            if done(body):
                return body
        if time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.2)
