"""Saga orchestrator: a pure state machine, (state, event) -> (new state, commands to send); no I/O.

Events are a start, a participant's reply and a passed deadline. The rules:

- Forward: each step's command is sent once (attempt 1); its success reply merges the reply's
  ``result`` into the saga data and sends the next step, and after the last step the saga is
  COMPLETED.
- A failure reply, or no reply before the step's deadline, starts compensation: the completed
  steps are undone in reverse order (a step without compensation is skipped). A step that timed
  out is compensated too, because it may have been applied (participants make a compensation of
  something never done a no-op, and refuse a forward command that arrives after its
  compensation). When nothing is left to undo the saga is COMPENSATED, including when step 1
  failed and there was nothing to undo.
- A compensation that fails or times out is retried with a new attempt number after a delay, up
  to ``compensation_max_attempts``; then the saga is FAILED and the next attempt of that
  compensation is parked in the participant's command DLQ for an operator. If the operator
  replays it and it succeeds, the saga resumes compensating.
- Only a reply to the awaited ``(step, command, attempt)`` counts: duplicates, replies to an
  earlier attempt and replies that arrive after a timeout are ignored (``None``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from chassis.saga import Outcome, SagaCommand, SagaReply, command_topic
from saga.definition import Invocation, SagaDefinition


class SagaStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    FAILED = "FAILED"


#: A saga in one of these states is in flight: it has a deadline and awaits a reply.
ACTIVE_STATUSES = (SagaStatus.RUNNING, SagaStatus.COMPENSATING)


class StepStatus(StrEnum):
    """How far a step's forward command got."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"


class CompensationStatus(StrEnum):
    """How far a step's compensation got (NONE: not needed, or not reached)."""

    NONE = "NONE"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


@dataclass(frozen=True)
class StepLog:
    """One line of the saga's step log."""

    name: str
    forward: StepStatus = StepStatus.PENDING
    compensation: CompensationStatus = CompensationStatus.NONE
    reason: str | None = None

    @property
    def status(self) -> str:
        """One status for readers: the compensation's once it started, else the forward one."""
        if self.compensation is CompensationStatus.NONE:
            return self.forward.value
        return self.compensation.value


@dataclass(frozen=True)
class Awaiting:
    """The command whose reply the saga waits for. ``dispatched`` is False while a compensation
    retry waits for its delay (the deadline is then the time to send it)."""

    step: str
    command: str
    attempt: int
    compensating: bool
    dispatched: bool = True


@dataclass(frozen=True)
class SagaState:
    id: str
    type: str
    status: SagaStatus
    data: Mapping[str, Any]
    steps: tuple[StepLog, ...]
    started_at: dt.datetime
    awaiting: Awaiting | None = None
    deadline: dt.datetime | None = None
    failure_reason: str | None = None
    ended_at: dt.datetime | None = None

    @property
    def current_step(self) -> str | None:
        return self.awaiting.step if self.awaiting else None


@dataclass(frozen=True)
class OutgoingCommand:
    """A command to publish; with ``dead_letter_reason`` it goes to the command topic's DLQ."""

    participant: str
    command: SagaCommand
    dead_letter_reason: str | None = None

    @property
    def topic(self) -> str:
        topic = command_topic(self.participant)
        return f"{topic}.dlq" if self.dead_letter_reason is not None else topic


@dataclass(frozen=True)
class SagaEvent:
    """Something worth a log line (the engine logs it after the commit)."""

    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    level: str = "info"


@dataclass(frozen=True)
class Transition:
    state: SagaState
    commands: tuple[OutgoingCommand, ...] = ()
    events: tuple[SagaEvent, ...] = ()


@dataclass(frozen=True)
class Policy:
    step_timeout: dt.timedelta = dt.timedelta(seconds=30)
    compensation_max_attempts: int = 3
    compensation_retry_delay: dt.timedelta = dt.timedelta(seconds=1)


@dataclass
class _Draft:
    """A transition under construction."""

    state: SagaState
    commands: list[OutgoingCommand] = field(default_factory=list)
    events: list[SagaEvent] = field(default_factory=list)

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def set_step(self, index: int, **changes: Any) -> None:
        steps = list(self.state.steps)
        steps[index] = replace(steps[index], **changes)
        self.state = replace(self.state, steps=tuple(steps))

    def note(self, name: str, level: str = "info", **fields: Any) -> None:
        self.events.append(SagaEvent(name, {"saga_type": self.state.type, **fields}, level))

    def done(self) -> Transition:
        return Transition(self.state, tuple(self.commands), tuple(self.events))


class Orchestrator:
    """Runs one saga definition under a timing policy."""

    def __init__(self, definition: SagaDefinition, policy: Policy | None = None) -> None:
        self.definition = definition
        self.policy = policy or Policy()

    # --- events ---------------------------------------------------------------------------

    def start(self, saga_id: str, data: Mapping[str, Any], now: dt.datetime) -> Transition:
        state = SagaState(
            id=saga_id,
            type=self.definition.name,
            status=SagaStatus.RUNNING,
            data=dict(data),
            steps=tuple(StepLog(s.name) for s in self.definition.steps),
            started_at=now,
        )
        draft = _Draft(state)
        draft.note("saga.started", saga_id=saga_id)
        self._send_forward(draft, 0, now)
        return draft.done()

    def on_reply(self, state: SagaState, reply: SagaReply, now: dt.datetime) -> Transition | None:
        """Apply a participant's reply; None when it is not the awaited one (no effect)."""
        awaited = state.awaiting
        if (
            awaited is None
            or not awaited.dispatched
            or (reply.step, reply.command, reply.attempt)
            != (awaited.step, awaited.command, awaited.attempt)
        ):
            return None
        draft = _Draft(state)
        index = self.definition.index_of(awaited.step)
        succeeded = reply.outcome is Outcome.SUCCESS
        if not awaited.compensating:
            if succeeded:
                self._forward_succeeded(draft, index, reply.result, now)
            else:
                reason = f"step {awaited.step} ({awaited.command}) failed: {reply.reason}"
                draft.set_step(index, forward=StepStatus.FAILED, reason=reply.reason)
                draft.note("saga.step_failed", saga_id=state.id, step=awaited.step, reason=reason)
                self._start_compensating(draft, index - 1, reason, now)
        elif succeeded:
            self._compensation_succeeded(draft, index, now)
        else:
            self._compensation_failed(draft, index, reply.reason or "refused", now)
        return draft.done()

    def on_deadline(self, state: SagaState, now: dt.datetime) -> Transition | None:
        """The step's deadline passed: send a delayed retry, or treat the silence as a failure."""
        awaited = state.awaiting
        if (
            state.status not in ACTIVE_STATUSES
            or awaited is None
            or state.deadline is None
            or now < state.deadline
        ):
            return None
        draft = _Draft(state)
        index = self.definition.index_of(awaited.step)
        seconds = self.policy.step_timeout.total_seconds()
        if not awaited.dispatched:
            draft.note(
                "saga.compensation_retry",
                saga_id=state.id,
                step=awaited.step,
                command=awaited.command,
                attempt=awaited.attempt,
            )
            self._send_compensation(draft, index, awaited.attempt, now)
        elif not awaited.compensating:
            reason = f"step {awaited.step} ({awaited.command}) timed out after {seconds:g}s"
            draft.set_step(index, forward=StepStatus.TIMED_OUT, reason="no reply in time")
            draft.note("saga.step_timed_out", "warning", saga_id=state.id, step=awaited.step)
            self._start_compensating(draft, index, reason, now)
        else:
            self._compensation_failed(draft, index, f"no reply within {seconds:g}s", now)
        return draft.done()

    def awaited_command(self, state: SagaState) -> OutgoingCommand | None:
        """The command the saga waits on, as it was sent (same attempt), for a re-send."""
        awaited = state.awaiting
        if state.status not in ACTIVE_STATUSES or awaited is None or not awaited.dispatched:
            return None
        index = self.definition.index_of(awaited.step)
        return self._command(state, index, awaited.attempt, compensating=awaited.compensating)

    # --- forward --------------------------------------------------------------------------

    def _forward_succeeded(
        self, draft: _Draft, index: int, result: Mapping[str, Any], now: dt.datetime
    ) -> None:
        state = draft.state
        draft.update(data={**state.data, **result})
        draft.set_step(index, forward=StepStatus.SUCCEEDED, reason=None)
        draft.note("saga.step_succeeded", saga_id=state.id, step=state.steps[index].name)
        if index + 1 < len(self.definition.steps):
            self._send_forward(draft, index + 1, now)
            return
        draft.update(status=SagaStatus.COMPLETED, awaiting=None, deadline=None, ended_at=now)
        draft.note("saga.completed", saga_id=state.id)

    def _send_forward(self, draft: _Draft, index: int, now: dt.datetime) -> None:
        step = self.definition.steps[index]
        draft.set_step(index, forward=StepStatus.RUNNING)
        draft.update(
            awaiting=Awaiting(step.name, step.action.command, 1, compensating=False),
            deadline=now + self.policy.step_timeout,
        )
        draft.commands.append(self._command(draft.state, index, 1, compensating=False))

    # --- backward -------------------------------------------------------------------------

    def _start_compensating(
        self, draft: _Draft, from_index: int, reason: str, now: dt.datetime
    ) -> None:
        draft.update(status=SagaStatus.COMPENSATING, failure_reason=reason)
        self._compensate_next(draft, from_index, now)

    def _compensate_next(self, draft: _Draft, from_index: int, now: dt.datetime) -> None:
        """Compensate the nearest step at or before ``from_index`` that may have taken effect."""
        for index in range(from_index, -1, -1):
            log = draft.state.steps[index]
            may_have_applied = log.forward in (StepStatus.SUCCEEDED, StepStatus.TIMED_OUT)
            if may_have_applied and self.definition.steps[index].compensation is not None:
                self._send_compensation(draft, index, 1, now)
                return
        draft.update(status=SagaStatus.COMPENSATED, awaiting=None, deadline=None, ended_at=now)
        draft.note("saga.compensated", saga_id=draft.state.id, reason=draft.state.failure_reason)

    def _send_compensation(self, draft: _Draft, index: int, attempt: int, now: dt.datetime) -> None:
        step = self.definition.steps[index]
        assert step.compensation is not None
        draft.set_step(index, compensation=CompensationStatus.COMPENSATING)
        draft.update(
            awaiting=Awaiting(step.name, step.compensation.command, attempt, compensating=True),
            deadline=now + self.policy.step_timeout,
        )
        draft.commands.append(self._command(draft.state, index, attempt, compensating=True))

    def _compensation_succeeded(self, draft: _Draft, index: int, now: dt.datetime) -> None:
        resumed = draft.state.status is SagaStatus.FAILED
        draft.set_step(index, compensation=CompensationStatus.COMPENSATED)
        draft.note(
            "saga.compensation_succeeded",
            saga_id=draft.state.id,
            step=draft.state.steps[index].name,
        )
        if resumed:  # an operator replayed the parked compensation, and it worked
            draft.update(status=SagaStatus.COMPENSATING, ended_at=None)
            draft.note("saga.resumed", saga_id=draft.state.id)
        self._compensate_next(draft, index - 1, now)

    def _compensation_failed(
        self, draft: _Draft, index: int, reason: str, now: dt.datetime
    ) -> None:
        state = draft.state
        awaited = state.awaiting
        assert awaited is not None
        draft.set_step(index, reason=reason)
        draft.note(
            "saga.compensation_failed",
            "warning",
            saga_id=state.id,
            step=awaited.step,
            command=awaited.command,
            attempt=awaited.attempt,
            reason=reason,
        )
        next_attempt = awaited.attempt + 1
        if (
            state.status is SagaStatus.COMPENSATING
            and next_attempt <= self.policy.compensation_max_attempts
        ):
            delay = self.policy.compensation_retry_delay
            if delay <= dt.timedelta(0):
                self._send_compensation(draft, index, next_attempt, now)
                return
            draft.update(
                awaiting=replace(awaited, attempt=next_attempt, dispatched=False),
                deadline=now + delay,
            )
            return
        self._park(draft, index, next_attempt, reason, now)

    def _park(
        self, draft: _Draft, index: int, next_attempt: int, reason: str, now: dt.datetime
    ) -> None:
        """Give up: FAILED, and the next attempt of the compensation waits in the DLQ."""
        state = draft.state
        step = self.definition.steps[index]
        assert step.compensation is not None
        failure = (
            f"{step.compensation.command} of step {step.name} failed "
            f"after {next_attempt - 1} attempts: {reason}"
        )
        first_failure = state.status is not SagaStatus.FAILED
        draft.set_step(index, compensation=CompensationStatus.COMPENSATION_FAILED)
        draft.update(
            status=SagaStatus.FAILED,
            awaiting=Awaiting(
                step.name, step.compensation.command, next_attempt, compensating=True
            ),
            deadline=None,
            ended_at=now,
            failure_reason=(
                f"{state.failure_reason}; then {failure}" if first_failure else state.failure_reason
            ),
        )
        parked = self._command(draft.state, index, next_attempt, compensating=True)
        draft.commands.append(replace(parked, dead_letter_reason=failure))
        draft.note("saga.failed", "error", saga_id=state.id, step=step.name, reason=failure)

    # --- messages -------------------------------------------------------------------------

    def _command(
        self, state: SagaState, index: int, attempt: int, *, compensating: bool
    ) -> OutgoingCommand:
        step = self.definition.steps[index]
        invocation: Invocation | None = step.compensation if compensating else step.action
        assert invocation is not None
        return OutgoingCommand(
            invocation.participant,
            SagaCommand(
                saga_id=state.id,
                saga_type=state.type,
                step=step.name,
                command=invocation.command,
                attempt=attempt,
                compensates=step.action.command if compensating else None,
                payload=invocation.payload(state.data),
            ),
        )
