"""qna as a saga participant: SagaCommand envelopes on saga.qna.commands, SagaReply on saga.replies."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from chassis.faults import Fault, FaultFlags, FaultMode
from tests.integration.qna.harness import Json, Member, QnaHarness

pytestmark = pytest.mark.integration


async def question_with_answer(
    qna: QnaHarness, bounty: int = 40
) -> tuple[Member, Member, Json, Json]:
    asker, answerer = qna.member(), qna.member()
    question = await qna.ask(asker, bounty=bounty)
    answer = await qna.answer(answerer, question["id"])
    return asker, answerer, question, answer


async def test_answer_acceptance_forward_path_with_duplicates(qna: QnaHarness) -> None:
    asker, answerer, question, answer = await question_with_answer(qna)
    saga = f"accept-{uuid.uuid4().hex[:8]}"
    reserve = {"question_id": question["id"], "answer_id": answer["id"], "asker_id": str(asker.id)}

    reply = await qna.command("ReserveAcceptance", reserve, saga_id=saga, step="reserve-acceptance")
    assert reply.outcome == "SUCCESS", reply.reason
    assert reply.result == {
        "bounty": 40,
        "asker_id": str(asker.id),
        "answerer_id": str(answerer.id),
    }
    assert reply.step == "reserve-acceptance"
    assert (await qna.detail(question["id"]))["status"] == "ACCEPTING"
    row = await qna.question_row(question["id"])
    assert str(row["pending_answer_id"]) == answer["id"]
    await qna.wait_listed(question["id"], "ACCEPTING in the list", status="ACCEPTING")

    # the same command again (a redelivery): the same reply, no second effect
    again = await qna.command(
        "ReserveAcceptance", reserve, saga_id=saga, step="reserve-acceptance", expect_replies=2
    )
    assert (again.outcome, again.result) == (reply.outcome, reply.result)
    # a retried attempt of the same saga: the reservation stands, same result
    retried = await qna.command("ReserveAcceptance", reserve, saga_id=saga, attempt=2)
    assert (retried.outcome, retried.result) == ("SUCCESS", reply.result)
    # another saga cannot reserve the locked question
    second = await qna.command("ReserveAcceptance", reserve)
    assert second.outcome == "FAILURE"
    assert "OPEN" in (second.reason or "")
    assert (await qna.question_row(question["id"]))["version"] == row["version"]

    confirm = {"question_id": question["id"], "answer_id": answer["id"]}
    confirmed = await qna.command("ConfirmAcceptance", confirm, saga_id=saga)
    assert confirmed.outcome == "SUCCESS", confirmed.reason
    detail = await qna.detail(question["id"])
    assert detail["status"] == "RESOLVED"
    assert detail["accepted_answer_id"] == answer["id"]
    assert detail["answers"][0]["accepted"] is True
    await qna.wait_listed(
        question["id"], "RESOLVED in the list", status="RESOLVED", accepted_answer_id=answer["id"]
    )
    version = (await qna.question_row(question["id"]))["version"]

    duplicate = await qna.command("ConfirmAcceptance", confirm, saga_id=saga, expect_replies=2)
    assert duplicate.outcome == "SUCCESS"
    retried_confirm = await qna.command("ConfirmAcceptance", confirm, saga_id=saga, attempt=2)
    assert retried_confirm.outcome == "SUCCESS"
    assert (await qna.question_row(question["id"]))["version"] == version

    # the late compensation of a completed acceptance changes nothing
    cancel = await qna.command(
        "CancelAcceptance", confirm, saga_id=saga, compensates="ReserveAcceptance"
    )
    assert cancel.outcome == "SUCCESS"
    assert (await qna.detail(question["id"]))["status"] == "RESOLVED"


async def test_cancel_acceptance_reopens_only_for_the_saga_that_reserved(qna: QnaHarness) -> None:
    asker, _, question, answer = await question_with_answer(qna)
    payload = {"question_id": question["id"], "answer_id": answer["id"]}

    # compensation of a reservation that never happened: a no-op success
    nothing = await qna.command("CancelAcceptance", payload, compensates="ReserveAcceptance")
    assert nothing.outcome == "SUCCESS"
    assert nothing.result["compensates"] == "ReserveAcceptance"
    assert (await qna.detail(question["id"]))["status"] == "OPEN"

    saga = f"accept-{uuid.uuid4().hex[:8]}"
    reserved = await qna.command(
        "ReserveAcceptance", {**payload, "asker_id": str(asker.id)}, saga_id=saga
    )
    assert reserved.outcome == "SUCCESS"
    # another saga's compensation does not release this saga's lock
    foreign = await qna.command("CancelAcceptance", payload, compensates="ReserveAcceptance")
    assert foreign.outcome == "SUCCESS"
    assert (await qna.detail(question["id"]))["status"] == "ACCEPTING"

    cancelled = await qna.command(
        "CancelAcceptance", payload, saga_id=saga, compensates="ReserveAcceptance"
    )
    assert cancelled.outcome == "SUCCESS"
    assert (await qna.detail(question["id"]))["status"] == "OPEN"
    assert (await qna.question_row(question["id"]))["pending_answer_id"] is None
    await qna.wait_listed(question["id"], "OPEN again in the list", status="OPEN")

    again = await qna.command(
        "CancelAcceptance", payload, saga_id=saga, compensates="ReserveAcceptance", attempt=2
    )
    assert again.outcome == "SUCCESS"
    # after its compensation, a late forward command of the saga is refused
    late = await qna.command(
        "ReserveAcceptance", {**payload, "asker_id": str(asker.id)}, saga_id=saga, attempt=3
    )
    assert late.outcome == "FAILURE"
    assert (await qna.detail(question["id"]))["status"] == "OPEN"


async def test_reserve_acceptance_refusals(qna: QnaHarness) -> None:
    asker, answerer, question, answer = await question_with_answer(qna)
    own = await qna.answer(asker, question["id"], "answering myself")
    elsewhere = await qna.ask(qna.member())
    foreign_answer = await qna.answer(answerer, elsewhere["id"])

    def reserve(**overrides: str) -> Json:
        return {
            "question_id": question["id"],
            "answer_id": answer["id"],
            "asker_id": str(asker.id),
            **overrides,
        }

    cases = {
        "asker mismatch": reserve(asker_id=str(answerer.id)),
        "own answer": reserve(answer_id=own["id"]),
        "answer not on the question": reserve(answer_id=foreign_answer["id"]),
        "no such question": reserve(question_id=str(uuid.uuid4())),
        "malformed payload": {"question_id": "not-a-uuid"},
    }
    for case, payload in cases.items():
        reply = await qna.command("ReserveAcceptance", payload)
        assert reply.outcome == "FAILURE", case
        assert reply.reason, case
    assert (await qna.detail(question["id"]))["status"] == "OPEN"

    unknown = await qna.command("AcceptEverything", {})
    assert unknown.outcome == "FAILURE"


async def test_fault_flags_apply_to_participant_commands(qna_with_faults: QnaHarness) -> None:
    qna = qna_with_faults
    asker, _, question, answer = await question_with_answer(qna)
    payload = {"question_id": question["id"], "answer_id": answer["id"], "asker_id": str(asker.id)}
    redis: Redis = Redis.from_url(qna.settings.REDIS_URL)
    faults = FaultFlags(redis, enabled=True)
    await faults.set("qna", "reserve-acceptance", Fault(FaultMode.FAIL))
    try:
        failed = await qna.command("ReserveAcceptance", payload)
    finally:
        await faults.set("qna", "reserve-acceptance", Fault(FaultMode.OFF))
        await redis.aclose()
    assert failed.outcome == "FAILURE"
    assert "fault injected" in (failed.reason or "")
    assert (await qna.detail(question["id"]))["status"] == "OPEN"
    # with the flag off, the same command goes through
    passed = await qna.command("ReserveAcceptance", payload)
    assert passed.outcome == "SUCCESS", passed.reason


async def test_confirm_acceptance_after_cancel_acceptance_is_refused_without_effect(
    qna: QnaHarness,
) -> None:
    """The reservation was compensated (a timeout before the pivot): a ConfirmAcceptance of that
    saga arriving later must not resolve the question."""
    asker, _, question, answer = await question_with_answer(qna)
    saga = f"accept-{uuid.uuid4().hex[:8]}"
    confirm = {"question_id": question["id"], "answer_id": answer["id"]}
    reserve = {**confirm, "asker_id": str(asker.id)}
    assert (await qna.command("ReserveAcceptance", reserve, saga_id=saga)).outcome == "SUCCESS"
    cancelled = await qna.command(
        "CancelAcceptance", confirm, saga_id=saga, compensates="ReserveAcceptance"
    )
    assert cancelled.outcome == "SUCCESS"
    version = (await qna.question_row(question["id"]))["version"]

    late = await qna.command("ConfirmAcceptance", confirm, saga_id=saga)

    assert late.outcome == "FAILURE"
    detail = await qna.detail(question["id"])
    assert (detail["status"], detail["accepted_answer_id"]) == ("OPEN", None)
    assert (await qna.question_row(question["id"]))["version"] == version


async def test_reserve_acceptance_after_its_compensation_is_refused_without_effect(
    qna: QnaHarness,
) -> None:
    asker, _, question, answer = await question_with_answer(qna)
    saga = f"accept-{uuid.uuid4().hex[:8]}"
    confirm = {"question_id": question["id"], "answer_id": answer["id"]}
    cancelled = await qna.command(
        "CancelAcceptance", confirm, saga_id=saga, compensates="ReserveAcceptance"
    )
    assert cancelled.outcome == "SUCCESS"

    late = await qna.command(
        "ReserveAcceptance", {**confirm, "asker_id": str(asker.id)}, saga_id=saga
    )

    assert late.outcome == "FAILURE"
    assert late.reason == "a compensation of this saga was already applied"
    assert (await qna.detail(question["id"]))["status"] == "OPEN"
