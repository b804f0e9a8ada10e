"""Fault injection at every step of both sagas: a compensatable step or the pivot N fails, steps
N-1..1 are compensated in reverse (read from the orchestrator's log), and every participant is
left consistent; a retriable step that fails is tried again, never compensated."""

from __future__ import annotations

import json

import pytest

from tests.system.saga.client import SagaStackClient, eventually
from tests.system.saga.stack import Stack

pytestmark = pytest.mark.system

WITHDRAWAL = ["start-withdrawal", "anonymize-author", "retire-author", "complete-withdrawal"]
WITHDRAWAL_PARTICIPANT = {
    "start-withdrawal": "member",
    "anonymize-author": "board",
    "retire-author": "qna",
    "complete-withdrawal": "member",
}
ACCEPTANCE = ["reserve-acceptance", "transfer-points", "confirm-acceptance"]
#: The steps whose refusal compensates: the compensatable ones and the pivot (docs/sagas.md).
ACCEPTANCE_REFUSABLE = ["reserve-acceptance", "transfer-points"]
ACCEPTANCE_PARTICIPANT = {
    "reserve-acceptance": "qna",
    "transfer-points": "member",
    "confirm-acceptance": "qna",
}


def compensated_steps(stack: Stack, saga_id: str) -> list[str]:
    """The steps the orchestrator compensated, in the order it did."""
    events = [
        json.loads(line) for line in stack.logs("saga-worker").splitlines() if line.startswith("{")
    ]
    return [
        e["step"]
        for e in events
        if e.get("event") == "saga.compensation_succeeded" and e.get("saga_id") == saga_id
    ]


def expected_statuses(steps: list[str], failing: str) -> list[str]:
    n = steps.index(failing)
    return ["COMPENSATED"] * n + ["FAILED"] + ["PENDING"] * (len(steps) - n - 1)


@pytest.mark.parametrize("failing", WITHDRAWAL)
async def test_member_withdrawal_failing_at_each_step_is_undone(
    client: SagaStackClient, stack: Stack, failing: str
) -> None:
    member = await client.sign_up()
    post = await client.write_post(member)
    question = await client.ask(member, bounty=0)
    await client.set_fault(WITHDRAWAL_PARTICIPANT[failing], failing, "fail")

    saga_id = await client.withdraw(member)
    saga = await client.wait_saga(saga_id, "COMPENSATED")

    assert [s["status"] for s in saga["steps"]] == expected_statuses(WITHDRAWAL, failing)
    assert (
        f"fault injected into {WITHDRAWAL_PARTICIPANT[failing]}/{failing}" in saga["failure_reason"]
    )
    undone = list(reversed(WITHDRAWAL[: WITHDRAWAL.index(failing)]))
    await eventually(lambda: _logged(stack, saga_id, undone), message=f"compensations {undone}")
    assert compensated_steps(stack, saga_id) == undone
    # every participant is back where it was
    assert (await client.member(member.id))["status"] == "ACTIVE"
    assert await client.can_log_in(member.email)
    assert (await client.post(post))["author"]["id"] == member.id
    restored = await client.question(question)
    assert restored["status"] == "OPEN"
    assert restored["author"]["id"] == member.id


@pytest.mark.parametrize("failing", ACCEPTANCE_REFUSABLE)
async def test_answer_acceptance_failing_at_each_step_is_undone(
    client: SagaStackClient, stack: Stack, failing: str
) -> None:
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=40)
    answer = await client.answer(answerer, question)
    await client.set_fault(ACCEPTANCE_PARTICIPANT[failing], failing, "fail")

    saga_id = await client.accept(asker, question, answer)
    saga = await client.wait_saga(saga_id, "COMPENSATED")

    assert [s["status"] for s in saga["steps"]] == expected_statuses(ACCEPTANCE, failing)
    undone = list(reversed(ACCEPTANCE[: ACCEPTANCE.index(failing)]))
    await eventually(lambda: _logged(stack, saga_id, undone), message=f"compensations {undone}")
    assert compensated_steps(stack, saga_id) == undone
    reopened = await client.question(question)
    assert reopened["status"] == "OPEN"
    assert reopened["accepted_answer_id"] is None
    assert [a["accepted"] for a in reopened["answers"]] == [False]
    assert (await client.member(asker.id))["points"] == 100
    assert (await client.member(answerer.id))["points"] == 100


async def test_answer_acceptance_failing_at_its_retriable_step_is_retried_never_undone(
    client: SagaStackClient, stack: Stack
) -> None:
    """After the pivot nothing is compensated: ConfirmAcceptance is tried again (3 attempts in
    this stack) and then parked for an operator (test_resilience replays it)."""
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=40)
    answer = await client.answer(answerer, question)
    await client.set_fault("qna", "confirm-acceptance", "fail")

    saga = await client.wait_saga(await client.accept(asker, question, answer), "FAILED")

    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    assert [s["retries"] for s in saga["steps"]] == [0, 0, 2]
    assert (
        "ConfirmAcceptance of step confirm-acceptance was refused 3 times"
        in (saga["failure_reason"])
    )
    assert compensated_steps(stack, saga["id"]) == []
    assert (await client.question(question))["status"] == "ACCEPTING"
    assert (await client.member(asker.id))["points"] == 60
    assert (await client.member(answerer.id))["points"] == 140


async def _logged(stack: Stack, saga_id: str, steps: list[str]) -> bool:
    return len(compensated_steps(stack, saga_id)) >= len(steps)
