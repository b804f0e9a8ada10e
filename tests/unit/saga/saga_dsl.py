"""A given/expect test DSL for saga definitions, in the spirit of FTGO's saga unit-test support.

    given(MEMBER_WITHDRAWAL).start(member_id=M)
        .expect_command("member", "StartWithdrawal", payload={"member_id": M})
        .when_reply_success()
        .expect_command("board", "AnonymizeAuthor")
        .when_reply_failure("db down")
        .expect_command("member", "CancelWithdrawal")
        .when_reply_success()
        .expect_status("COMPENSATED")

It drives the pure orchestrator (no I/O) with a fake clock; every transition's commands wait
in ``outbox`` until an ``expect_*`` takes them, so an unexpected command fails the test.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Self

from chassis.saga import Outcome, SagaReply
from saga.definition import SagaDefinition
from saga.orchestrator import Orchestrator, OutgoingCommand, Policy, SagaState, Transition

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
POLICY = Policy(
    step_timeout=dt.timedelta(seconds=10),
    compensation_max_attempts=3,
    compensation_retry_delay=dt.timedelta(seconds=2),
    resend_timeout_cap=dt.timedelta(seconds=60),
    retry_backoff=dt.timedelta(seconds=1),
    retry_backoff_cap=dt.timedelta(seconds=5),
    retriable_max_attempts=5,
)


class SagaTest:
    def __init__(self, definition: SagaDefinition, policy: Policy) -> None:
        self.orchestrator = Orchestrator(definition, policy)
        self.now = T0
        self._state: SagaState | None = None
        self.outbox: list[OutgoingCommand] = []
        self.sent: list[OutgoingCommand] = []  # every command an expect_* has taken
        self.last_reply: SagaReply | None = None
        self.ignored = False

    @property
    def state(self) -> SagaState:
        assert self._state is not None, "start() the saga first"
        return self._state

    # --- given / when ----------------------------------------------------------------------

    def start(self, **data: Any) -> Self:
        self._take(self.orchestrator.start(str(uuid.uuid4()), data, self.now))
        return self

    def when_reply_success(self, **result: Any) -> Self:
        return self.when_reply(self._last_sent(), Outcome.SUCCESS, result=result)

    def when_reply_failure(self, reason: str = "refused") -> Self:
        return self.when_reply(self._last_sent(), Outcome.FAILURE, reason=reason)

    def when_reply(
        self,
        to: OutgoingCommand,
        outcome: Outcome,
        *,
        reason: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> Self:
        reply = SagaReply(
            saga_id=to.command.saga_id,
            step=to.command.step,
            command=to.command.command,
            attempt=to.command.attempt,
            outcome=outcome,
            reason=reason,
            result=result or {},
        )
        self.last_reply = reply
        before = self.state
        self._take(self.orchestrator.on_reply(before, reply, self.now))
        self.ignored_as = self.orchestrator.why_ignored(before, reply) if self.ignored else None
        return self

    def when_duplicate_reply(self) -> Self:
        """The last reply is delivered again (a new message, same content)."""
        assert self.last_reply is not None
        return self.when_reply_to(self.last_reply)

    def when_reply_to(self, reply: SagaReply) -> Self:
        before = self.state
        self._take(self.orchestrator.on_reply(before, reply, self.now))
        self.ignored_as = self.orchestrator.why_ignored(before, reply) if self.ignored else None
        return self

    def when_late_reply(
        self, command: str, attempt: int = 1, outcome: Outcome = Outcome.SUCCESS
    ) -> Self:
        """A reply to an earlier command arrives now."""
        earlier = next(
            c
            for c in reversed(self.sent)
            if c.command.command == command and c.command.attempt == attempt
        )
        return self.when_reply(earlier, outcome, reason="late")

    def when_deadline_passes(self) -> Self:
        assert self.state.deadline is not None, "the saga has no deadline"
        return self.when_time_passes((self.state.deadline - self.now).total_seconds())

    def when_time_passes(self, seconds: float) -> Self:
        self.now += dt.timedelta(seconds=seconds)
        self._take(self.orchestrator.on_deadline(self.state, self.now))
        return self

    # --- expect ----------------------------------------------------------------------------

    def expect_command(
        self,
        participant: str,
        command: str,
        *,
        payload: dict[str, Any] | None = None,
        attempt: int = 1,
    ) -> Self:
        assert self.outbox, f"expected {participant}/{command}, but no command was sent"
        outgoing = self.outbox.pop(0)
        got = (outgoing.participant, outgoing.command.command, outgoing.command.attempt)
        assert got == (participant, command, attempt), (
            f"expected {participant}/{command} #{attempt}, got {got}"
        )
        assert outgoing.dead_letter_reason is None, "expected a command, got a dead letter"
        assert outgoing.topic == f"saga.{participant}.commands"
        if payload is not None:
            assert outgoing.command.payload == payload
        self.sent.append(outgoing)
        return self

    def expect_dead_letter(self, participant: str, command: str, *, attempt: int) -> Self:
        assert self.outbox, f"expected a dead letter of {command}, but nothing was sent"
        outgoing = self.outbox.pop(0)
        assert outgoing.dead_letter_reason, f"expected a dead letter, got {outgoing}"
        assert outgoing.topic == f"saga.{participant}.commands.dlq"
        assert (outgoing.command.command, outgoing.command.attempt) == (command, attempt)
        self.sent.append(outgoing)
        return self

    def expect_no_command(self) -> Self:
        assert not self.outbox, f"expected no command, got {self.outbox}"
        return self

    def expect_ignored(self, as_event: str | None = None, why: str | None = None) -> Self:
        """The event had no effect; for a reply, optionally how it is logged and why."""
        assert self.ignored, "expected the event to have no effect"
        if as_event is not None or why is not None:
            assert self.ignored_as is not None, "expected an ignored reply"
            event, reason = self.ignored_as
            assert as_event is None or event == as_event, self.ignored_as
            assert why is None or why in reason, self.ignored_as
        return self.expect_no_command()

    def expect_retries(self, step: str, retries: int) -> Self:
        got = {s.name: s.retries for s in self.state.steps}[step]
        assert got == retries, f"{step} retries {got}, expected {retries}"
        return self

    def expect_deadline_in(self, seconds: float) -> Self:
        assert self.state.deadline is not None, "the saga has no deadline"
        assert (self.state.deadline - self.now).total_seconds() == seconds, (
            f"deadline in {(self.state.deadline - self.now).total_seconds()}s, expected {seconds}s"
        )
        return self

    def expect_not_compensated(self) -> Self:
        """No compensation was ever sent (the pivot rule)."""
        sent = [c.command for c in self.sent if c.command.compensates is not None]
        assert not sent, f"compensations were sent: {sent}"
        return self

    def expect_status(self, status: str) -> Self:
        assert self.state.status.value == status, f"status {self.state.status}, expected {status}"
        if status in ("COMPLETED", "COMPENSATED"):
            assert self.state.awaiting is None
            assert self.state.deadline is None
            assert self.state.ended_at is not None
            self.expect_no_command()
        return self

    def expect_steps(self, *statuses: str) -> Self:
        assert tuple(s.status for s in self.state.steps) == statuses
        return self

    def expect_data(self, **expected: Any) -> Self:
        for key, value in expected.items():
            assert self.state.data.get(key) == value, (
                f"data[{key!r}] = {self.state.data.get(key)!r}"
            )
        return self

    def expect_failure_reason(self, *fragments: str) -> Self:
        reason = self.state.failure_reason or ""
        for fragment in fragments:
            assert fragment in reason, f"{fragment!r} not in failure reason {reason!r}"
        return self

    def expect_event(self, name: str) -> Self:
        assert name in self.events, f"{name} not among {self.events}"
        return self

    # --- internals -------------------------------------------------------------------------

    events: list[str]

    def _take(self, transition: Transition | None) -> None:
        self.ignored = transition is None
        self.events = []
        if transition is None:
            return
        self._state = transition.state
        self.outbox.extend(transition.commands)
        self.events = [e.name for e in transition.events]

    def _last_sent(self) -> OutgoingCommand:
        assert self.sent, "no command has been expected yet"
        return self.sent[-1]


def given(definition: SagaDefinition, policy: Policy = POLICY) -> SagaTest:
    return SagaTest(definition, policy)
