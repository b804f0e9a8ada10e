"""Saga orchestrator: a pure state machine, (state, event) -> (new state, commands to send); no I/O.

Events are a start, a participant's reply and a passed deadline. The rules follow each step's
kind (compensatable, pivot, retriable: Richardson, *Microservices Patterns* ch. 4; docs/sagas.md):

- Forward: each step's command is sent (attempt 1); its success reply merges the reply's
  ``result`` into the saga data and sends the next step, and after the last step the saga is
  COMPLETED.
- Before the pivot, a refusal or no reply before the step's deadline starts compensation: the
  completed steps are undone in reverse order. A compensatable step that timed out is
  compensated too, because it may have been applied (participants make a compensation of
  something never done a no-op, and refuse a forward command that arrives after its
  compensation). When nothing is left to undo the saga is COMPENSATED, including when step 1
  failed and there was nothing to undo.
- The pivot refused: the steps before it are compensated, as above (a refusal has no effect).
- At or after the pivot, a timeout never compensates: the work may have been done and cannot be
  undone. The same command (same saga, step and attempt, so the participant applies it at most
  once) is re-sent with a growing deadline (``step_timeout`` doubling, capped at
  ``resend_timeout_cap``) for as long as it takes; the saga stays RUNNING.
- A retriable step refused (a transient failure of its participant: it cannot be refused for a
  business reason) is tried again with a new attempt number after a capped, growing backoff,
  up to ``retriable_max_attempts``; then the saga is FAILED and the next attempt is parked in
  the participant's command DLQ. An operator's replay that succeeds resumes the saga.
- A compensation that times out is re-sent as it was (same attempt), with the same growing
  deadline as a pivot's re-send and no limit: silence means a participant or the broker is down
  or slow, not that the compensation cannot be applied, and giving up would leave the work
  half undone during an ordinary broker restart. A compensation that is *refused* is retried
  with a new attempt number after a delay, up to ``compensation_max_attempts``; then the saga is
  FAILED and the next attempt of that compensation is parked in the participant's command DLQ
  for an operator. If the operator replays it and it succeeds, the saga resumes compensating.
- Replies: the reply to the awaited ``(step, command, attempt)`` counts. A SUCCESS of an earlier
  attempt of the awaited command counts as that command's success (it was applied; the later
  attempt will be a no-op or refused for want of anything to do). Anything else (a duplicate,
  a refusal of an earlier attempt, a late reply to a forward step that timed out and is being
  compensated) is ignored (``None``); ``why_ignored`` says which, for the log.

Each re-send or new attempt of a forward step, and each re-send of a compensation, adds one to
the step's ``retries`` and emits a
``saga.step_retry`` event (``reason`` ``timeout`` or ``refused``), which the engine logs and
counts in ``saga_step_retries_total``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from chassis.saga import Outcome, SagaCommand, SagaReply, command_topic
from saga.definition import Invocation, SagaDefinition, Step, StepKind


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
    #: Re-sends after a timeout plus new attempts after a refusal of the forward command.
    retries: int = 0

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
    """Timing and retry limits (the engine builds it from the saga service's settings).

    - ``step_timeout``: how long a command waits for its reply;
    - ``resend_timeout_cap``: the deadline after the n-th re-send of a pivot or retriable
      command is ``min(step_timeout * 2**n, resend_timeout_cap)``;
    - ``retry_backoff`` / ``retry_backoff_cap``: the wait before attempt n+1 of a refused
      retriable step is ``min(retry_backoff * 2**(n-1), retry_backoff_cap)``;
    - ``retriable_max_attempts``: refused attempts of one retriable step before the saga is
      FAILED and the next attempt parked in the DLQ;
    - ``compensation_max_attempts`` / ``compensation_retry_delay``: the same for compensations
      (a fixed delay).
    """

    step_timeout: dt.timedelta = dt.timedelta(seconds=30)
    compensation_max_attempts: int = 3
    compensation_retry_delay: dt.timedelta = dt.timedelta(seconds=1)
    resend_timeout_cap: dt.timedelta = dt.timedelta(minutes=5)
    retry_backoff: dt.timedelta = dt.timedelta(seconds=1)
    retry_backoff_cap: dt.timedelta = dt.timedelta(minutes=1)
    retriable_max_attempts: int = 20

    def resend_timeout(self, retries: int) -> dt.timedelta:
        """The deadline of the ``retries``-th re-send (1, 2, ...) after a timeout."""
        grown: dt.timedelta = self.step_timeout * (2 ** min(retries, 30))
        return min(grown, self.resend_timeout_cap)

    def backoff(self, refused_attempt: int) -> dt.timedelta:
        """The wait after attempt ``refused_attempt`` (1, 2, ...) of a retriable step was refused."""
        grown: dt.timedelta = self.retry_backoff * (2 ** min(refused_attempt - 1, 30))
        return min(grown, self.retry_backoff_cap)


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
        self._send_forward(draft, 0, 1, now)
        return draft.done()

    def on_reply(self, state: SagaState, reply: SagaReply, now: dt.datetime) -> Transition | None:
        """Apply a participant's reply; None when it does not count (see ``why_ignored``)."""
        awaited = state.awaiting
        if not self._counts(state, reply):
            return None
        assert awaited is not None
        draft = _Draft(state)
        index = self.definition.index_of(awaited.step)
        succeeded = reply.outcome is Outcome.SUCCESS
        if reply.attempt != awaited.attempt or not awaited.dispatched:
            draft.note(
                "saga.late_success",
                saga_id=state.id,
                step=awaited.step,
                command=awaited.command,
                attempt=reply.attempt,
                awaited_attempt=awaited.attempt,
            )
        if not awaited.compensating:
            if succeeded:
                self._forward_succeeded(draft, index, reply.result, now)
            else:
                self._forward_refused(draft, index, reply.reason or "refused", now)
        elif succeeded:
            self._compensation_succeeded(draft, index, now)
        else:
            self._compensation_failed(draft, index, reply.reason or "refused", now)
        return draft.done()

    def why_ignored(self, state: SagaState, reply: SagaReply) -> tuple[str, str]:
        """For a reply ``on_reply`` ignored: ``(event, why)`` for the log, where ``event`` is
        ``saga.late_reply`` (the orchestrator had given up on that command) or
        ``saga.reply_ignored`` (a duplicate, or nothing this saga waits for)."""
        awaited = state.awaiting
        late = "saga.late_reply"
        if reply.saga_id != state.id:
            return "saga.reply_ignored", "a reply of another saga"
        try:
            index = self.definition.index_of(reply.step)
        except KeyError:
            return "saga.reply_ignored", "no such step"
        log = state.steps[index]
        step = self.definition.steps[index]
        forward = reply.command == step.action.command
        if awaited is not None and (reply.step, reply.command) == (awaited.step, awaited.command):
            if reply.attempt < awaited.attempt:
                return late, f"a {reply.outcome.value} of attempt {reply.attempt}, superseded"
            return "saga.reply_ignored", "a duplicate of a reply already applied"
        if forward and log.forward is StepStatus.TIMED_OUT:
            return late, "the step timed out and is compensated"
        if state.status not in ACTIVE_STATUSES and awaited is None:
            return "saga.reply_ignored", f"the saga has ended {state.status.value}"
        return "saga.reply_ignored", "a duplicate, or not the awaited command"

    def on_deadline(self, state: SagaState, now: dt.datetime) -> Transition | None:
        """The step's deadline passed: send a delayed retry, re-send a command that may have been
        applied (at or after the pivot), or treat the silence as a failure (before it)."""
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
        step = self.definition.steps[index]
        seconds = self.policy.step_timeout.total_seconds()
        if not awaited.dispatched and awaited.compensating:
            draft.note(
                "saga.compensation_retry",
                saga_id=state.id,
                step=awaited.step,
                command=awaited.command,
                attempt=awaited.attempt,
            )
            self._send_compensation(draft, index, awaited.attempt, now)
        elif not awaited.dispatched:  # a refused retriable step's backoff is over
            self._send_forward(draft, index, awaited.attempt, now)
        elif awaited.compensating or step.retried_on_timeout:  # silence is not a refusal
            self._resend(draft, index, now)
        else:
            reason = f"step {awaited.step} ({awaited.command}) timed out after {seconds:g}s"
            draft.set_step(index, forward=StepStatus.TIMED_OUT, reason="no reply in time")
            draft.note("saga.step_timed_out", "warning", saga_id=state.id, step=awaited.step)
            self._start_compensating(draft, index, reason, now)
        return draft.done()

    def awaited_command(self, state: SagaState) -> OutgoingCommand | None:
        """The command the saga waits on, as it was sent (same attempt), for a re-send."""
        awaited = state.awaiting
        if state.status not in ACTIVE_STATUSES or awaited is None or not awaited.dispatched:
            return None
        index = self.definition.index_of(awaited.step)
        return self._command(state, index, awaited.attempt, compensating=awaited.compensating)

    # --- replies --------------------------------------------------------------------------

    @staticmethod
    def _counts(state: SagaState, reply: SagaReply) -> bool:
        """The awaited reply, or a SUCCESS of an earlier attempt of the awaited command."""
        awaited = state.awaiting
        if (
            awaited is None
            or reply.saga_id != state.id
            or (reply.step, reply.command) != (awaited.step, awaited.command)
        ):
            return False
        if awaited.dispatched and reply.attempt == awaited.attempt:
            return True
        return reply.outcome is Outcome.SUCCESS and reply.attempt < awaited.attempt

    # --- forward --------------------------------------------------------------------------

    def _forward_succeeded(
        self, draft: _Draft, index: int, result: Mapping[str, Any], now: dt.datetime
    ) -> None:
        state = draft.state
        draft.update(data={**state.data, **result})
        draft.set_step(index, forward=StepStatus.SUCCEEDED, reason=None)
        draft.note("saga.step_succeeded", saga_id=state.id, step=state.steps[index].name)
        if state.status is SagaStatus.FAILED:  # an operator replayed the parked command
            draft.update(status=SagaStatus.RUNNING, ended_at=None, failure_reason=None)
            draft.note("saga.resumed", saga_id=state.id)
        if index + 1 < len(self.definition.steps):
            self._send_forward(draft, index + 1, 1, now)
            return
        draft.update(status=SagaStatus.COMPLETED, awaiting=None, deadline=None, ended_at=now)
        draft.note("saga.completed", saga_id=state.id)

    def _forward_refused(self, draft: _Draft, index: int, reason: str, now: dt.datetime) -> None:
        state = draft.state
        step = self.definition.steps[index]
        if step.kind is StepKind.RETRIABLE:
            self._retry_refused(draft, index, reason, now)
            return
        # A compensatable step or the pivot: the refusal had no effect, undo what came before.
        failure = f"step {step.name} ({step.action.command}) failed: {reason}"
        draft.set_step(index, forward=StepStatus.FAILED, reason=reason)
        draft.note("saga.step_failed", saga_id=state.id, step=step.name, reason=failure)
        self._start_compensating(draft, index - 1, failure, now)

    def _retry_refused(self, draft: _Draft, index: int, reason: str, now: dt.datetime) -> None:
        """A retriable step was refused: try a new attempt after a backoff, or park it."""
        state = draft.state
        awaited = state.awaiting
        assert awaited is not None
        step = self.definition.steps[index]
        next_attempt = awaited.attempt + 1
        if (
            state.status is SagaStatus.FAILED
            or awaited.attempt >= self.policy.retriable_max_attempts
        ):
            self._park_forward(draft, index, next_attempt, reason, now)
            return
        delay = self.policy.backoff(awaited.attempt)
        retries = state.steps[index].retries + 1
        draft.set_step(index, forward=StepStatus.RUNNING, reason=reason, retries=retries)
        draft.update(
            awaiting=replace(awaited, attempt=next_attempt, dispatched=False),
            deadline=now + delay,
        )
        draft.note(
            "saga.step_retry",
            "warning",
            saga_id=state.id,
            step=step.name,
            command=step.action.command,
            attempt=next_attempt,
            reason="refused",
            refusal=reason,
            retries=retries,
            delay_seconds=delay.total_seconds(),
        )

    def _resend(self, draft: _Draft, index: int, now: dt.datetime) -> None:
        """No reply to the awaited command, and silence is not a refusal: the command is sent
        again as it was (same attempt: the participant applies it at most once) with a growing
        deadline, for as long as it takes. Used at or after the pivot, where the work may have been
        done and cannot be undone, and for every compensation: a participant answers each one
        (undoing nothing is a no-op that succeeds), so silence means it or the broker is down or
        slow; only refusals count toward ``compensation_max_attempts``."""
        state = draft.state
        awaited = state.awaiting
        assert awaited is not None
        retries = state.steps[index].retries + 1
        timeout = self.policy.resend_timeout(retries)
        what = "compensation: no reply in time" if awaited.compensating else "no reply in time"
        draft.set_step(index, reason=f"{what}; sent again", retries=retries)
        draft.update(deadline=now + timeout)
        draft.commands.append(
            self._command(state, index, awaited.attempt, compensating=awaited.compensating)
        )
        draft.note(
            "saga.step_retry",
            "warning",
            saga_id=state.id,
            step=awaited.step,
            command=awaited.command,
            attempt=awaited.attempt,
            reason="timeout",
            compensating=awaited.compensating,
            retries=retries,
            next_timeout_seconds=timeout.total_seconds(),
        )

    def _send_forward(self, draft: _Draft, index: int, attempt: int, now: dt.datetime) -> None:
        step = self.definition.steps[index]
        draft.set_step(index, forward=StepStatus.RUNNING)
        draft.update(
            awaiting=Awaiting(step.name, step.action.command, attempt, compensating=False),
            deadline=now + self.policy.step_timeout,
        )
        draft.commands.append(self._command(draft.state, index, attempt, compensating=False))

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
        self._park_compensation(draft, index, next_attempt, reason, now)

    # --- giving up --------------------------------------------------------------------------

    def _park_compensation(
        self, draft: _Draft, index: int, next_attempt: int, reason: str, now: dt.datetime
    ) -> None:
        """Give up: FAILED, and the next attempt of the compensation waits in the DLQ."""
        step = self.definition.steps[index]
        assert step.compensation is not None
        failure = (
            f"{step.compensation.command} of step {step.name} failed "
            f"after {next_attempt - 1} attempts: {reason}"
        )
        draft.set_step(index, compensation=CompensationStatus.COMPENSATION_FAILED)
        self._park(draft, step, step.compensation, next_attempt, failure, now, compensating=True)

    def _park_forward(
        self, draft: _Draft, index: int, next_attempt: int, reason: str, now: dt.datetime
    ) -> None:
        """Give up on a retriable step: FAILED, and its next attempt waits in the DLQ."""
        step = self.definition.steps[index]
        failure = (
            f"{step.action.command} of step {step.name} was refused "
            f"{next_attempt - 1} times: {reason}"
        )
        draft.set_step(index, forward=StepStatus.FAILED, reason=reason)
        self._park(draft, step, step.action, next_attempt, failure, now, compensating=False)

    def _park(
        self,
        draft: _Draft,
        step: Step,
        invocation: Invocation,
        next_attempt: int,
        failure: str,
        now: dt.datetime,
        *,
        compensating: bool,
    ) -> None:
        state = draft.state
        first_failure = state.status is not SagaStatus.FAILED
        reason = failure
        if first_failure and state.failure_reason:
            reason = f"{state.failure_reason}; then {failure}"
        draft.update(
            status=SagaStatus.FAILED,
            awaiting=Awaiting(
                step.name, invocation.command, next_attempt, compensating=compensating
            ),
            deadline=None,
            ended_at=now,
            failure_reason=reason if first_failure else state.failure_reason,
        )
        index = self.definition.index_of(step.name)
        parked = self._command(draft.state, index, next_attempt, compensating=compensating)
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
