"""member-withdrawal, step by step: given the saga, expect command X; given a reply, expect Y."""

from __future__ import annotations

import pytest

from chassis.saga import Outcome
from saga.definitions import MEMBER_WITHDRAWAL
from tests.unit.saga.saga_dsl import given

M = "6f1c3c2e-6b1d-4b8e-9a55-0c5a1f3e2d11"
BY_MEMBER = {"member_id": M}
FORWARD = [
    ("start-withdrawal", "member", "StartWithdrawal"),
    ("anonymize-author", "board", "AnonymizeAuthor"),
    ("retire-author", "qna", "RetireAuthor"),
    ("complete-withdrawal", "member", "CompleteWithdrawal"),
]


def test_every_step_succeeds_and_the_saga_completes() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal", payload=BY_MEMBER)
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor", payload=BY_MEMBER)
        .when_reply_success()
        .expect_command("qna", "RetireAuthor", payload=BY_MEMBER)
        .when_reply_success()
        .expect_command("member", "CompleteWithdrawal", payload=BY_MEMBER)
        .when_reply_success()
        .expect_status("COMPLETED")
        .expect_steps("SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED")
        .expect_event("saga.completed")
    )


def test_a_refused_start_ends_compensated_with_nothing_to_undo() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_failure("member is not ACTIVE")
        .expect_status("COMPENSATED")
        .expect_steps("FAILED", "PENDING", "PENDING", "PENDING")
        .expect_failure_reason("start-withdrawal", "member is not ACTIVE")
    )


def test_a_retire_author_failure_restores_the_posts_then_cancels_the_withdrawal() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_success()
        .expect_command("qna", "RetireAuthor")
        .when_reply_failure("a question is ACCEPTING")
        .expect_status("COMPENSATING")
        .expect_command("board", "RestoreAuthor", payload=BY_MEMBER)
        .when_reply_success()
        .expect_command("member", "CancelWithdrawal", payload=BY_MEMBER)
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "COMPENSATED", "FAILED", "PENDING")
        .expect_failure_reason("retire-author", "a question is ACCEPTING")
    )


@pytest.mark.parametrize(
    ("failing_step", "compensations"),
    [
        ("start-withdrawal", []),
        ("anonymize-author", [("member", "CancelWithdrawal")]),
        ("retire-author", [("board", "RestoreAuthor"), ("member", "CancelWithdrawal")]),
        (
            "complete-withdrawal",
            [("qna", "RestoreAuthor"), ("board", "RestoreAuthor"), ("member", "CancelWithdrawal")],
        ),
    ],
)
def test_a_failing_step_compensates_the_steps_before_it_in_reverse(
    failing_step: str, compensations: list[tuple[str, str]]
) -> None:
    saga = given(MEMBER_WITHDRAWAL).start(member_id=M)
    for step, participant, command in FORWARD:
        saga.expect_command(participant, command)
        if step == failing_step:
            saga.when_reply_failure("injected")
            break
        saga.when_reply_success()
    for participant, command in compensations:
        saga.expect_status("COMPENSATING").expect_command(participant, command).when_reply_success()
    saga.expect_status("COMPENSATED")
    failed_at = [s for s, _, _ in FORWARD].index(failing_step)
    expected = ["COMPENSATED"] * failed_at + ["FAILED"] + ["PENDING"] * (3 - failed_at)
    saga.expect_steps(*expected)


def test_a_timed_out_step_is_compensated_too_because_it_may_have_been_applied() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_time_passes(9.9)
        .expect_ignored()
        .when_deadline_passes()
        .expect_event("saga.step_timed_out")
        .expect_command("board", "RestoreAuthor")
        .when_reply_success()
        .expect_command("member", "CancelWithdrawal")
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "COMPENSATED", "PENDING", "PENDING")
        .expect_failure_reason("anonymize-author (AnonymizeAuthor) timed out after 10s")
    )


def test_a_timed_out_pivot_is_sent_again_never_compensated() -> None:
    """Issue 11: an erased account must not have its questions re-opened by RestoreAuthor."""
    saga = given(MEMBER_WITHDRAWAL).start(member_id=M)
    for _, participant, command in FORWARD[:3]:
        saga.expect_command(participant, command).when_reply_success()
    (
        saga.expect_command("member", "CompleteWithdrawal")
        .when_deadline_passes()
        .expect_event("saga.step_retry")
        .expect_command("member", "CompleteWithdrawal", attempt=1, payload=BY_MEMBER)
        .expect_status("RUNNING")
        .expect_retries("complete-withdrawal", 1)
        .expect_deadline_in(20)
        .when_deadline_passes()
        .expect_command("member", "CompleteWithdrawal", attempt=1)
        .expect_deadline_in(40)
        .when_reply_success()
        .expect_status("COMPLETED")
        .expect_steps("SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED")
        .expect_retries("complete-withdrawal", 2)
        .expect_not_compensated()
    )


def test_a_refused_pivot_undoes_the_steps_before_it() -> None:
    saga = given(MEMBER_WITHDRAWAL).start(member_id=M)
    for _, participant, command in FORWARD[:3]:
        saga.expect_command(participant, command).when_reply_success()
    (
        saga.expect_command("member", "CompleteWithdrawal")
        .when_reply_failure("member not found")
        .expect_command("qna", "RestoreAuthor")
        .when_reply_success()
        .expect_command("board", "RestoreAuthor")
        .when_reply_success()
        .expect_command("member", "CancelWithdrawal")
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "COMPENSATED", "COMPENSATED", "FAILED")
        .expect_failure_reason("complete-withdrawal (CompleteWithdrawal) failed: member not found")
    )


def test_a_pivot_refused_after_its_resends_still_undoes_the_steps_before_it() -> None:
    """A re-sent pivot that is then refused had no effect: compensate as for any refusal."""
    saga = given(MEMBER_WITHDRAWAL).start(member_id=M)
    for _, participant, command in FORWARD[:3]:
        saga.expect_command(participant, command).when_reply_success()
    (
        saga.expect_command("member", "CompleteWithdrawal")
        .when_deadline_passes()
        .expect_command("member", "CompleteWithdrawal")
        .when_reply_failure("refused")
        .expect_command("qna", "RestoreAuthor")
        .expect_status("COMPENSATING")
    )


def test_a_reply_that_arrives_after_the_timeout_is_ignored() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_deadline_passes()
        .expect_command("member", "CancelWithdrawal")
        .when_late_reply("StartWithdrawal")
        .expect_ignored("saga.late_reply", "timed out")
        .expect_status("COMPENSATING")
        .when_late_reply("CancelWithdrawal")
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "PENDING", "PENDING", "PENDING")
    )


def test_a_duplicate_reply_has_no_effect() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_duplicate_reply()
        .expect_ignored()
        .when_reply_success()
        .expect_command("qna", "RetireAuthor")
        .when_duplicate_reply()
        .expect_ignored()
        .expect_steps("SUCCEEDED", "SUCCEEDED", "RUNNING", "PENDING")
    )


def test_a_failing_compensation_is_retried_with_new_attempts_then_the_saga_fails() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_success()
        .expect_command("qna", "RetireAuthor")
        .when_reply_failure("a question is ACCEPTING")
        .expect_command("board", "RestoreAuthor", attempt=1)
        .when_reply_failure("board database down")
        .expect_no_command()  # the retry waits for its delay
        .when_time_passes(1.9)
        .expect_ignored()
        .when_time_passes(0.1)
        .expect_command("board", "RestoreAuthor", attempt=2)
        .when_reply_failure("board database down")
        .when_deadline_passes()
        .expect_command("board", "RestoreAuthor", attempt=3)
        .when_reply_failure("board database down")
        .expect_status("FAILED")
        .expect_dead_letter("board", "RestoreAuthor", attempt=4)
        .expect_event("saga.failed")
        .expect_steps("SUCCEEDED", "COMPENSATION_FAILED", "FAILED", "PENDING")
        .expect_failure_reason(
            "retire-author (RetireAuthor) failed: a question is ACCEPTING",
            "RestoreAuthor of step anonymize-author failed after 3 attempts: board database down",
        )
        .when_time_passes(3600)
        .expect_ignored()  # FAILED waits for an operator, not for a clock
    )


def test_a_compensation_that_succeeds_on_a_retry_lets_the_compensation_go_on() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure()
        .expect_command("member", "CancelWithdrawal", attempt=1)
        .when_reply_failure("member database down")
        .expect_event("saga.compensation_failed")
        .when_deadline_passes()
        .expect_command("member", "CancelWithdrawal", attempt=2)
        .when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "FAILED", "PENDING", "PENDING")
    )


def test_a_silent_compensation_is_sent_again_as_it_was_for_as_long_as_it_takes() -> None:
    """Silence is not a refusal (a broker restart, a slow participant): the same attempt is
    re-sent with a growing deadline, never counted toward the limit, never FAILED."""
    saga = (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure()
        .expect_command("member", "CancelWithdrawal", attempt=1)
    )
    for retries, timeout in ((1, 20), (2, 40), (3, 60), (4, 60), (5, 60)):
        (
            saga.when_deadline_passes()
            .expect_command("member", "CancelWithdrawal", attempt=1)
            .expect_retries("start-withdrawal", retries)
            .expect_deadline_in(timeout)
            .expect_event("saga.step_retry")
            .expect_status("COMPENSATING")
        )
    (
        saga.when_reply_success()
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "FAILED", "PENDING", "PENDING")
    )


def test_a_late_success_of_an_earlier_compensation_attempt_counts() -> None:
    """Attempt 1 was refused and attempt 2 sent; a SUCCESS of attempt 1 (replayed by an
    operator, say) proves the compensation applied: it is the compensation's success (attempt
    2 is then a no-op at the participant, and its reply is ignored)."""
    saga = (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure()
        .expect_command("member", "CancelWithdrawal", attempt=1)
        .when_reply_failure("member database down")
        .when_deadline_passes()
        .expect_command("member", "CancelWithdrawal", attempt=2)
    )
    second = saga.sent[-1]
    (
        saga.when_late_reply("CancelWithdrawal", attempt=1)
        .expect_event("saga.late_success")
        .expect_status("COMPENSATED")
        .when_reply(second, Outcome.SUCCESS)
        .expect_ignored("saga.reply_ignored", "ended COMPENSATED")
    )


def test_a_late_success_while_the_next_compensation_attempt_waits_counts() -> None:
    (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure()
        .expect_command("member", "CancelWithdrawal", attempt=1)
        .when_reply_failure("member database down")  # attempt 2 waits for the retry delay
        .expect_no_command()
        .when_late_reply("CancelWithdrawal", attempt=1)
        .expect_status("COMPENSATED")
    )
