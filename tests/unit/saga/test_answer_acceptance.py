"""answer-acceptance, step by step: given the saga, expect command X; given a reply, expect Y."""

from __future__ import annotations

import pytest

from chassis.saga import Outcome
from saga.definitions import ANSWER_ACCEPTANCE
from tests.unit.saga.saga_dsl import given

Q, A = "q-1", "a-1"
ASKER, ANSWERER = "m-asker", "m-answerer"
START = {"question_id": Q, "answer_id": A, "asker_id": ASKER, "answerer_id": ANSWERER, "bounty": 30}
RESERVED = {"bounty": 30, "asker_id": ASKER, "answerer_id": ANSWERER}
POINTS = {"from_member_id": ASKER, "to_member_id": ANSWERER, "amount": 30, "question_id": Q}
ANOTHER_SAGAS_RESERVATION = given(ANSWER_ACCEPTANCE).start(**START).outbox[0]
FORWARD = [
    ("reserve-acceptance", "qna", "ReserveAcceptance"),
    ("transfer-points", "member", "TransferPoints"),
    ("confirm-acceptance", "qna", "ConfirmAcceptance"),
]


def test_every_step_succeeds_and_the_saga_completes() -> None:
    (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command(
            "qna",
            "ReserveAcceptance",
            payload={"question_id": Q, "answer_id": A, "asker_id": ASKER},
        )
        .when_reply_success(**RESERVED)
        .expect_command("member", "TransferPoints", payload=POINTS)
        .when_reply_success()
        .expect_command("qna", "ConfirmAcceptance", payload={"question_id": Q, "answer_id": A})
        .when_reply_success()
        .expect_status("COMPLETED")
        .expect_steps("SUCCEEDED", "SUCCEEDED", "SUCCEEDED")
    )


def test_the_bounty_read_under_qnas_lock_is_the_one_transferred() -> None:
    """The pre-check saw 30, but the reservation's result (authoritative) says 50."""
    (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_success(**{**RESERVED, "bounty": 50})
        .expect_data(bounty=50)
        .expect_command("member", "TransferPoints", payload={**POINTS, "amount": 50})
    )


def test_an_unpayable_bounty_cancels_the_acceptance_and_ends_compensated() -> None:
    (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_success(**RESERVED)
        .expect_command("member", "TransferPoints")
        .when_reply_failure("insufficient points: 20 < 30")
        .expect_command("qna", "CancelAcceptance", payload={"question_id": Q, "answer_id": A})
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "FAILED", "PENDING")
        .expect_failure_reason("transfer-points (TransferPoints) failed: insufficient points")
    )


def test_a_failed_confirmation_refunds_the_points_then_cancels_the_acceptance() -> None:
    (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_success(**RESERVED)
        .expect_command("member", "TransferPoints")
        .when_reply_success()
        .expect_command("qna", "ConfirmAcceptance")
        .when_reply_failure()
        .expect_command("member", "RefundPoints", payload=POINTS)
        .when_reply_success()
        .expect_command("qna", "CancelAcceptance")
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "COMPENSATED", "FAILED")
    )


@pytest.mark.parametrize(
    ("failing_step", "compensations"),
    [
        ("reserve-acceptance", []),
        ("transfer-points", [("qna", "CancelAcceptance")]),
        ("confirm-acceptance", [("member", "RefundPoints"), ("qna", "CancelAcceptance")]),
    ],
)
def test_a_failing_step_compensates_the_steps_before_it_in_reverse(
    failing_step: str, compensations: list[tuple[str, str]]
) -> None:
    saga = given(ANSWER_ACCEPTANCE).start(**START)
    for step, participant, command in FORWARD:
        saga.expect_command(participant, command)
        if step == failing_step:
            saga.when_reply_failure("injected")
            break
        saga.when_reply_success(**RESERVED)
    for participant, command in compensations:
        saga.expect_status("COMPENSATING").expect_command(participant, command).when_reply_success()
    saga.expect_status("COMPENSATED")


def test_a_timed_out_transfer_is_refunded_and_its_late_success_is_ignored() -> None:
    (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_success(**RESERVED)
        .expect_command("member", "TransferPoints")
        .when_deadline_passes()
        .expect_command("member", "RefundPoints", payload=POINTS)
        .when_late_reply("TransferPoints")
        .expect_ignored()  # no ConfirmAcceptance: the saga is already compensating
        .when_reply(ANOTHER_SAGAS_RESERVATION, Outcome.SUCCESS)
        .expect_ignored()  # a reply that is not the awaited one has no effect
        .when_late_reply("RefundPoints")
        .expect_command("qna", "CancelAcceptance")
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "COMPENSATED", "PENDING")
    )


def test_a_refund_that_keeps_failing_fails_the_saga_and_parks_the_refund() -> None:
    saga = (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_success(**RESERVED)
        .expect_command("member", "TransferPoints")
        .when_reply_success()
        .expect_command("qna", "ConfirmAcceptance")
        .when_reply_failure()
    )
    for attempt in (1, 2, 3):
        if attempt > 1:
            saga.when_deadline_passes()  # the retry delay
        saga.expect_command("member", "RefundPoints", attempt=attempt).when_reply_failure("down")
    (
        saga.expect_status("FAILED")
        .expect_dead_letter("member", "RefundPoints", attempt=4)
        .expect_steps("SUCCEEDED", "COMPENSATION_FAILED", "FAILED")
    )
