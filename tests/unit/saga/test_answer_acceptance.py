"""answer-acceptance, step by step: given the saga, expect command X; given a reply, expect Y.

reserve-acceptance is compensatable, transfer-points the pivot, confirm-acceptance retriable.
"""

from __future__ import annotations

import pytest

from chassis.saga import Outcome
from saga.definitions import ANSWER_ACCEPTANCE
from tests.unit.saga.saga_dsl import SagaTest, given

Q, A = "q-1", "a-1"
ASKER, ANSWERER = "m-asker", "m-answerer"
START = {"question_id": Q, "answer_id": A, "asker_id": ASKER, "answerer_id": ANSWERER, "bounty": 30}
RESERVED = {"bounty": 30, "asker_id": ASKER, "answerer_id": ANSWERER}
POINTS = {"from_member_id": ASKER, "to_member_id": ANSWERER, "amount": 30, "question_id": Q}
CONFIRM = {"question_id": Q, "answer_id": A}
ANOTHER_SAGAS_RESERVATION = given(ANSWER_ACCEPTANCE).start(**START).outbox[0]


def transferred() -> SagaTest:
    """The saga right after the pivot succeeded: ConfirmAcceptance #1 is out."""
    return (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_success(**RESERVED)
        .expect_command("member", "TransferPoints", payload=POINTS)
        .when_reply_success()
        .expect_command("qna", "ConfirmAcceptance", payload=CONFIRM)
    )


def reserved() -> SagaTest:
    """The saga waiting on the pivot: TransferPoints #1 is out."""
    return (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_success(**RESERVED)
        .expect_command("member", "TransferPoints", payload=POINTS)
    )


# --- the happy path -------------------------------------------------------------------------


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
        .expect_command("qna", "ConfirmAcceptance", payload=CONFIRM)
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


# --- before and at the pivot: refusals compensate ----------------------------------------------


def test_a_refused_reservation_ends_compensated_with_nothing_to_undo() -> None:
    (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_failure("the question is not OPEN")
        .expect_status("COMPENSATED")
        .expect_steps("FAILED", "PENDING", "PENDING")
    )


def test_a_refused_pivot_cancels_the_acceptance_and_ends_compensated() -> None:
    (
        reserved()
        .when_reply_failure("insufficient points: 20 < 30")
        .expect_command("qna", "CancelAcceptance", payload=CONFIRM)
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "FAILED", "PENDING")
        .expect_failure_reason("transfer-points (TransferPoints) failed: insufficient points")
    )


def test_a_timed_out_reservation_is_cancelled_and_its_late_success_is_a_late_reply() -> None:
    """Before the pivot a timeout compensates, the timed-out step included."""
    (
        given(ANSWER_ACCEPTANCE)
        .start(**START)
        .expect_command("qna", "ReserveAcceptance")
        .when_deadline_passes()
        .expect_event("saga.step_timed_out")
        .expect_command("qna", "CancelAcceptance")
        .when_late_reply("ReserveAcceptance")
        .expect_ignored("saga.late_reply", "timed out")
        .expect_status("COMPENSATING")
        .when_reply(ANOTHER_SAGAS_RESERVATION, Outcome.SUCCESS)
        .expect_ignored("saga.reply_ignored")  # not this saga's awaited command
        .when_late_reply("CancelAcceptance")
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "PENDING", "PENDING")
    )


# --- the pivot: a timeout is a re-send, never a compensation ----------------------------------


def test_a_timed_out_pivot_is_sent_again_with_a_growing_capped_deadline() -> None:
    saga = reserved()
    for retries, deadline in ((1, 20), (2, 40), (3, 60), (4, 60)):
        (
            saga.when_deadline_passes()
            .expect_event("saga.step_retry")
            .expect_command("member", "TransferPoints", attempt=1, payload=POINTS)
            .expect_status("RUNNING")
            .expect_retries("transfer-points", retries)
            .expect_deadline_in(deadline)
            .expect_steps("SUCCEEDED", "RUNNING", "PENDING")
        )
    (
        saga.when_reply_success()
        .expect_command("qna", "ConfirmAcceptance")
        .when_reply_success()
        .expect_status("COMPLETED")
        .expect_retries("transfer-points", 4)
        .expect_not_compensated()
    )


def test_both_replies_to_a_resent_pivot_move_the_saga_once() -> None:
    """The first copy and the re-sent copy share an attempt: the participant replies to both
    (the second from its command log), and only the first counts."""
    saga = reserved().when_deadline_passes().expect_command("member", "TransferPoints")
    (
        saga.when_reply_success()
        .expect_command("qna", "ConfirmAcceptance")
        .when_reply(saga.sent[1], Outcome.SUCCESS)  # the same reply again
        .expect_ignored("saga.reply_ignored")
        .expect_steps("SUCCEEDED", "SUCCEEDED", "RUNNING")
    )


def test_a_pivot_refused_after_a_resend_cancels_the_acceptance() -> None:
    (
        reserved()
        .when_deadline_passes()
        .expect_command("member", "TransferPoints")
        .when_reply_failure("insufficient points")
        .expect_command("qna", "CancelAcceptance")
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "FAILED", "PENDING")
    )


# --- after the pivot: the retriable step ----------------------------------------------------


def test_a_timed_out_confirmation_is_sent_again_until_it_succeeds() -> None:
    """Issue 11: ConfirmAcceptance slower than the step timeout must not refund the bounty nor
    cancel the acceptance; the saga waits for it and completes."""
    (
        transferred()
        .when_deadline_passes()
        .expect_command("qna", "ConfirmAcceptance", attempt=1, payload=CONFIRM)
        .expect_status("RUNNING")
        .expect_retries("confirm-acceptance", 1)
        .when_deadline_passes()
        .expect_command("qna", "ConfirmAcceptance", attempt=1)
        .when_reply_success()
        .expect_status("COMPLETED")
        .expect_steps("SUCCEEDED", "SUCCEEDED", "SUCCEEDED")
        .expect_retries("confirm-acceptance", 2)
        .expect_not_compensated()
    )


def test_a_refused_confirmation_is_tried_again_with_new_attempts_after_a_backoff() -> None:
    (
        transferred()
        .when_reply_failure("qna failing")
        .expect_event("saga.step_retry")
        .expect_no_command()  # the backoff: 1 s
        .expect_deadline_in(1)
        .expect_status("RUNNING")
        .when_time_passes(1)
        .expect_command("qna", "ConfirmAcceptance", attempt=2)
        .when_reply_failure("qna failing")
        .expect_deadline_in(2)  # doubling
        .when_deadline_passes()
        .expect_command("qna", "ConfirmAcceptance", attempt=3)
        .when_reply_failure("qna failing")
        .expect_deadline_in(4)
        .when_deadline_passes()
        .expect_command("qna", "ConfirmAcceptance", attempt=4)
        .when_reply_failure("qna failing")
        .expect_deadline_in(5)  # capped
        .when_deadline_passes()
        .expect_command("qna", "ConfirmAcceptance", attempt=5)
        .when_reply_success()
        .expect_status("COMPLETED")
        .expect_retries("confirm-acceptance", 4)
        .expect_not_compensated()
    )


def confirmation_refused_to_the_limit() -> SagaTest:
    """ConfirmAcceptance refused 5 times (the test policy's limit): FAILED, #6 parked."""
    saga = transferred()
    for attempt in range(1, 6):
        if attempt > 1:
            saga.when_deadline_passes().expect_command("qna", "ConfirmAcceptance", attempt=attempt)
        saga.when_reply_failure("qna failing")
    return (
        saga.expect_status("FAILED")
        .expect_dead_letter("qna", "ConfirmAcceptance", attempt=6)
        .expect_event("saga.failed")
        .expect_steps("SUCCEEDED", "SUCCEEDED", "FAILED")
        .expect_failure_reason("ConfirmAcceptance of step confirm-acceptance was refused 5 times")
        .expect_not_compensated()
    )


def test_a_confirmation_refused_to_the_limit_fails_the_saga_and_parks_the_next_attempt() -> None:
    saga = confirmation_refused_to_the_limit()
    assert saga.state.ended_at is not None
    saga.when_time_passes(3600).expect_ignored()  # FAILED waits for an operator


def test_a_replayed_parked_confirmation_that_succeeds_completes_the_saga() -> None:
    saga = confirmation_refused_to_the_limit()
    (
        saga.when_reply(saga.sent[-1], Outcome.SUCCESS)
        .expect_event("saga.resumed")
        .expect_status("COMPLETED")
        .expect_steps("SUCCEEDED", "SUCCEEDED", "SUCCEEDED")
    )
    assert saga.state.failure_reason is None


def test_a_replayed_parked_confirmation_that_fails_again_parks_the_next_attempt() -> None:
    saga = confirmation_refused_to_the_limit()
    (
        saga.when_reply(saga.sent[-1], Outcome.FAILURE, reason="still failing")
        .expect_status("FAILED")
        .expect_dead_letter("qna", "ConfirmAcceptance", attempt=7)
    )


# --- late replies ---------------------------------------------------------------------------


def test_a_refusal_of_an_earlier_attempt_is_a_late_reply_and_changes_nothing() -> None:
    saga = (
        transferred()
        .when_reply_failure("qna failing")
        .when_time_passes(1)
        .expect_command("qna", "ConfirmAcceptance", attempt=2)
    )
    (
        saga.when_late_reply("ConfirmAcceptance", attempt=1, outcome=Outcome.FAILURE)
        .expect_ignored("saga.late_reply", "attempt 1")
        .expect_status("RUNNING")
        .when_reply_success()
        .expect_status("COMPLETED")
    )


def test_a_success_of_an_earlier_attempt_of_the_awaited_command_counts() -> None:
    """Attempt 2 is awaited, and attempt 1 reports SUCCESS (its refusal was not the last word,
    e.g. an operator applied it): the step succeeded; the reply to attempt 2 is then ignored."""
    saga = (
        transferred()
        .when_reply_failure("qna failing")
        .when_time_passes(1)
        .expect_command("qna", "ConfirmAcceptance", attempt=2)
    )
    second = saga.sent[-1]
    (
        saga.when_late_reply("ConfirmAcceptance", attempt=1)
        .expect_event("saga.late_success")
        .expect_status("COMPLETED")
        .when_reply(second, Outcome.SUCCESS)
        .expect_ignored("saga.reply_ignored", "ended COMPLETED")
    )


def test_a_success_of_an_earlier_attempt_during_the_backoff_counts() -> None:
    (
        transferred()
        .when_reply_failure("qna failing")
        .expect_no_command()
        .when_late_reply("ConfirmAcceptance", attempt=1)
        .expect_status("COMPLETED")
    )


@pytest.mark.parametrize("outcome", [Outcome.SUCCESS, Outcome.FAILURE])
def test_a_reply_to_a_step_already_passed_changes_nothing(outcome: Outcome) -> None:
    saga = transferred()
    saga.when_late_reply("TransferPoints", outcome=outcome).expect_ignored("saga.reply_ignored")
    saga.expect_steps("SUCCEEDED", "SUCCEEDED", "RUNNING")
