"""Engine rules shared by every saga: retries, operator recovery, re-sends, policies."""

from __future__ import annotations

import datetime as dt

from chassis.saga import Outcome
from saga.definitions import MEMBER_WITHDRAWAL
from saga.orchestrator import Orchestrator, Policy
from tests.unit.saga.saga_dsl import SagaTest, given

M = "member-1"


def failed_saga() -> SagaTest:
    """member-withdrawal that gave up on CancelWithdrawal after its 3 attempts."""
    saga = (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure()
    )
    for attempt in (1, 2, 3):
        if attempt > 1:
            saga.when_deadline_passes()
        saga.expect_command("member", "CancelWithdrawal", attempt=attempt).when_reply_failure("x")
    return saga.expect_status("FAILED").expect_dead_letter("member", "CancelWithdrawal", attempt=4)


def test_a_replayed_parked_compensation_that_succeeds_resumes_the_saga() -> None:
    saga = failed_saga()
    parked = saga.sent[-1]
    (
        saga.when_reply(parked, Outcome.SUCCESS)
        .expect_event("saga.resumed")
        .expect_status("COMPENSATED")
        .expect_steps("COMPENSATED", "FAILED", "PENDING", "PENDING")
    )


def test_a_replayed_parked_compensation_that_fails_again_parks_the_next_attempt() -> None:
    saga = failed_saga()
    reason = saga.state.failure_reason
    (
        saga.when_reply(saga.sent[-1], Outcome.FAILURE, reason="still down")
        .expect_status("FAILED")
        .expect_dead_letter("member", "CancelWithdrawal", attempt=5)
    )
    assert saga.state.failure_reason == reason


def test_a_refusal_of_an_earlier_attempt_of_a_failed_saga_changes_nothing() -> None:
    saga = failed_saga()
    (
        saga.when_late_reply("CancelWithdrawal", attempt=3, outcome=Outcome.FAILURE)
        .expect_ignored("saga.late_reply", "attempt 3")
        .expect_status("FAILED")
    )


def test_a_late_success_of_an_earlier_attempt_resumes_a_failed_saga() -> None:
    """A SUCCESS of an earlier attempt of the awaited command is the participant's word that it
    was applied, even once the saga is FAILED."""
    (
        failed_saga()
        .when_late_reply("CancelWithdrawal", attempt=2)
        .expect_event("saga.resumed")
        .expect_status("COMPENSATED")
    )


def test_the_awaited_command_is_resent_unchanged_for_recovery() -> None:
    saga = given(MEMBER_WITHDRAWAL).start(member_id=M).expect_command("member", "StartWithdrawal")
    orchestrator = Orchestrator(MEMBER_WITHDRAWAL)
    resent = orchestrator.awaited_command(saga.state)
    assert resent == saga.sent[-1]


def test_nothing_is_resent_while_a_retry_waits_or_after_the_end() -> None:
    orchestrator = Orchestrator(MEMBER_WITHDRAWAL)
    saga = (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure()
        .expect_command("member", "CancelWithdrawal")
        .when_reply_failure()
    )
    assert orchestrator.awaited_command(saga.state) is None  # waiting for the retry delay
    saga.when_deadline_passes().expect_command("member", "CancelWithdrawal", attempt=2)
    saga.when_reply_success().expect_status("COMPENSATED")
    assert orchestrator.awaited_command(saga.state) is None


def test_without_a_retry_delay_the_next_attempt_is_sent_at_once() -> None:
    policy = Policy(compensation_retry_delay=dt.timedelta(0), compensation_max_attempts=2)
    (
        given(MEMBER_WITHDRAWAL, policy)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure()
        .expect_command("member", "CancelWithdrawal", attempt=1)
        .when_reply_failure()
        .expect_command("member", "CancelWithdrawal", attempt=2)
        .when_reply_failure()
        .expect_status("FAILED")
        .expect_dead_letter("member", "CancelWithdrawal", attempt=3)
    )


def test_each_command_carries_the_saga_and_what_it_compensates() -> None:
    saga = (
        given(MEMBER_WITHDRAWAL)
        .start(member_id=M)
        .expect_command("member", "StartWithdrawal")
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure()
        .expect_command("member", "CancelWithdrawal")
    )
    forward, compensation = saga.sent[0].command, saga.sent[-1].command
    assert forward.saga_type == "member-withdrawal"
    assert forward.step == "start-withdrawal"
    assert forward.compensates is None
    assert compensation.step == "start-withdrawal"
    assert compensation.compensates == "StartWithdrawal"
    assert compensation.saga_id == forward.saga_id == saga.state.id


def test_a_started_saga_has_a_deadline_one_step_timeout_away() -> None:
    saga = given(MEMBER_WITHDRAWAL).start(member_id=M)
    assert saga.state.deadline == saga.now + dt.timedelta(seconds=10)
    assert saga.state.current_step == "start-withdrawal"
    assert saga.state.status.value == "RUNNING"


def test_recovery_resends_a_pivot_being_retried_unchanged_and_nothing_during_a_backoff() -> None:
    """After a restart, ``recover`` re-sends ``awaited_command``: for a pivot re-sent after a
    timeout it is the same attempt again; a retriable step waiting out its backoff and a FAILED
    saga have nothing in flight."""
    from saga.definitions import ANSWER_ACCEPTANCE

    orchestrator = Orchestrator(ANSWER_ACCEPTANCE)
    start = {"question_id": "q", "answer_id": "a", "asker_id": "m1", "answerer_id": "m2"}
    saga = (
        given(ANSWER_ACCEPTANCE)
        .start(**start, bounty=10)
        .expect_command("qna", "ReserveAcceptance")
        .when_reply_success()
        .expect_command("member", "TransferPoints")
        .when_deadline_passes()
        .expect_command("member", "TransferPoints")
    )
    assert orchestrator.awaited_command(saga.state) == saga.sent[-1]
    assert saga.sent[-1].command.attempt == 1
    saga.when_reply_success().expect_command("qna", "ConfirmAcceptance").when_reply_failure()
    assert orchestrator.awaited_command(saga.state) is None  # the backoff
    saga.when_deadline_passes().expect_command("qna", "ConfirmAcceptance", attempt=2)
    assert orchestrator.awaited_command(saga.state) == saga.sent[-1]
