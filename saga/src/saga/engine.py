"""Application service: runs the pure orchestrator against the store, one transaction per event.

Each event (a start, a reply, a passed deadline, a restart) is handled in one unit of work: the
saga row is locked, the orchestrator computes the transition, and the new state, its step log
and every outgoing command (through the outbox) are committed together. Logs and metrics are
written only after the commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from chassis.db import utcnow
from chassis.idempotency import IdempotentRequest
from chassis.logging import get_logger
from chassis.messaging.envelope import Envelope
from chassis.problems import Conflict
from chassis.saga import REPLY_EVENT_TYPE, SagaReply
from saga import metrics
from saga.definition import SagaDefinition
from saga.orchestrator import (
    Orchestrator,
    OutgoingCommand,
    Policy,
    SagaState,
    SagaStatus,
    Transition,
)
from saga.store import SagaUnitOfWork, StoredSaga

log = get_logger("saga.engine")
tracer = trace.get_tracer("saga")

#: The consumer name under which handled reply ids are recorded (the inbox).
REPLY_CONSUMER = "saga-orchestrator"


@dataclass(frozen=True)
class StartedSaga:
    saga_id: str
    status_code: int = 202


class SagaEngine:
    """Starts sagas and moves them on; every method is one transaction."""

    def __init__(
        self,
        uow_factory: Callable[[], SagaUnitOfWork],
        definitions: Mapping[str, SagaDefinition],
        policy: Policy,
        *,
        topic_prefix: str = "",
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.uow_factory = uow_factory
        self.definitions = dict(definitions)
        self.orchestrators = {name: Orchestrator(d, policy) for name, d in definitions.items()}
        self.policy = policy
        self.topic_prefix = topic_prefix
        self.clock = clock
        #: Called after a commit that set a saga's deadline, with that deadline (UTC): the
        #: worker's sweeper wakes early when it is sooner than its next look.
        self.on_deadline: Callable[[dt.datetime], None] | None = None

    # --- start ----------------------------------------------------------------------------

    async def start(
        self,
        saga_type: str,
        initiator_id: uuid.UUID,
        load_data: Callable[[], Awaitable[Mapping[str, Any]]],
        *,
        request: IdempotentRequest | None = None,
    ) -> StartedSaga:
        """Start a saga. ``load_data`` (e.g. a remote pre-check) runs only when the request is not
        a retry of one already answered; 409 (``Conflict``) when the saga's exclusive key is
        taken by a running saga, or, for a ``once_per_key`` definition, by a completed one."""
        definition = self.definitions[saga_type]
        async with self.uow_factory() as uow:
            if request is not None:
                stored = await request.claim(uow.session)
                if stored is not None:
                    return StartedSaga(str(stored.body["saga_id"]), stored.status_code)
            data = dict(await load_data())
            lock_key = str(data[definition.exclusive_key]) if definition.exclusive_key else None
            if lock_key is not None and await uow.sagas.running_exists(saga_type, lock_key):
                raise Conflict(f"a {saga_type} saga is already running for {lock_key}")
            # A completed saga was running before it completed, so this check and the one above
            # leave no gap: a start that raced the first one's completion saw it running.
            if (
                lock_key is not None
                and definition.once_per_key
                and await uow.sagas.completed_exists(saga_type, lock_key)
            ):
                raise Conflict(f"a {saga_type} saga has already completed for {lock_key}")
            transition = self.orchestrators[saga_type].start(str(uuid.uuid4()), data, self.clock())
            message_ids = await self._publish(uow, transition.commands)
            try:
                await uow.sagas.add(
                    transition.state,
                    initiator_id=initiator_id,
                    lock_key=lock_key,
                    participants=[
                        (
                            s.action.participant,
                            s.action.command,
                            s.compensation.command if s.compensation else None,
                        )
                        for s in definition.steps
                    ],
                    command_message_id=message_ids[-1] if message_ids else None,
                )
                await uow.session.flush()
            except IntegrityError as exc:  # the partial unique index: a concurrent start won
                raise Conflict(f"a {saga_type} saga is already running for {lock_key}") from exc
            started = StartedSaga(transition.state.id)
            if request is not None:
                await request.complete(uow.session, 202, {"saga_id": started.saga_id})
            uow.after_commit(lambda: metrics.SAGA_STARTED.labels(saga_type).inc())
            self._report(uow, None, transition)
            await uow.commit()
        return started

    # --- reply ----------------------------------------------------------------------------

    async def handle_reply(self, envelope: Envelope) -> None:
        """Consumer of ``saga.replies``: apply the reply if it is the awaited one, exactly once."""
        if envelope.type != REPLY_EVENT_TYPE:
            log.warning("saga.unknown_message", type=envelope.type, event_id=envelope.id)
            return
        try:
            reply = SagaReply.model_validate(envelope.data)
        except ValidationError as exc:
            raise ValueError(f"malformed saga reply {envelope.id}: {exc}") from exc  # -> DLQ
        async with self.uow_factory() as uow:
            if not await uow.first_delivery(REPLY_CONSUMER, envelope.id):
                log.info("saga.reply_duplicate", saga_id=reply.saga_id, event_id=envelope.id)
                return
            stored = await uow.sagas.get(reply.saga_id, for_update=True)
            if stored is None:
                self._ignored(reply, "unknown saga")
            else:
                state = stored.state
                orchestrator = self.orchestrators[state.type]
                transition = orchestrator.on_reply(state, reply, self.clock())
                if transition is None:
                    event, why = orchestrator.why_ignored(state, reply)
                    self._ignored(reply, why, event)
                else:
                    await self._apply(uow, state, transition)
            await uow.commit()

    # --- deadlines and recovery -------------------------------------------------------------

    async def sweep(self, limit: int = 100) -> int:
        """Apply every passed deadline (timeouts and delayed retries); returns how many."""
        return (await self.sweep_until_next(limit))[0]

    async def sweep_until_next(self, limit: int = 100) -> tuple[int, dt.datetime | None]:
        """``sweep``, and in the same transaction the earliest deadline still ahead (None when
        there is none): how many were applied, and when to look again. A full batch (``limit``)
        answers "now", since more may be overdue."""
        async with self.uow_factory() as uow:
            now = self.clock()
            due = await uow.sagas.due(now, limit)
            for state in due:
                try:  # one saga that cannot move on must not hold the others back
                    with self._continue_trace(uow, state, "saga deadline"):
                        async with uow.session.begin_nested():
                            transition = self.orchestrators[state.type].on_deadline(state, now)
                            if transition is not None:
                                await self._apply(uow, state, transition)
                except Exception:
                    log.exception("saga.deadline_failed", saga_id=state.id, saga_type=state.type)
            upcoming = now if len(due) >= limit else await uow.sagas.next_deadline(now)
            await uow.commit()
        return len(due), upcoming

    async def recover(self, limit: int = 1000) -> int:
        """After a (re)start: re-send every awaited command that already left the outbox (same
        attempt; participants deduplicate) and give every in-flight step a full timeout again,
        because replies may have queued up while no orchestrator was running."""
        async with self.uow_factory() as uow:
            now = self.clock()
            postponed = await uow.sagas.postpone_deadlines(now + self.policy.step_timeout)
            resent = 0
            for state in await uow.sagas.awaiting_resend(limit):
                command = self.orchestrators[state.type].awaited_command(state)
                if command is None:
                    continue
                with self._continue_trace(uow, state, "saga recover"):
                    message_ids = await self._publish(uow, (command,))
                    await uow.sagas.save(state, state, command_message_id=message_ids[0])
                resent += 1
            await uow.commit()
        log.info("saga.recovered", resent=resent, deadlines_postponed=postponed)
        return resent

    async def refresh_in_flight(self) -> None:
        """Set ``saga_in_flight`` and ``saga_overdue`` (in flight, deadline passed more than
        ``metrics.OVERDUE_AFTER_SECONDS`` ago) for every saga type, from the database."""
        overdue_before = self.clock() - dt.timedelta(seconds=metrics.OVERDUE_AFTER_SECONDS)
        async with self.uow_factory() as uow:
            counts = await uow.sagas.in_flight_counts()
            overdue = await uow.sagas.overdue_counts(overdue_before)
        for saga_type in self.definitions:
            metrics.SAGA_IN_FLIGHT.labels(saga_type).set(counts.get(saga_type, 0))
            metrics.SAGA_OVERDUE.labels(saga_type).set(overdue.get(saga_type, 0))

    async def get(self, saga_id: str) -> StoredSaga | None:
        async with self.uow_factory() as uow:
            return await uow.sagas.get(saga_id)

    # --- internals --------------------------------------------------------------------------

    @staticmethod
    @contextlib.contextmanager
    def _continue_trace(uow: SagaUnitOfWork, state: SagaState, name: str) -> Iterator[None]:
        """A span for work no message started (a passed deadline, a restart's re-send), the child
        of the saga's stored trace context (its last write: the reply or request that set the
        deadline), so the command it stages continues the saga's trace. A child, not a link: the
        re-sent command is caused by that earlier handling, and one trace shows the whole saga."""
        parent = propagate.extract(uow.sagas.trace_context(state.id))
        with tracer.start_as_current_span(
            name,
            context=parent,
            attributes={
                "saga.id": state.id,
                "saga.type": state.type,
                "saga.step": state.current_step or "",
            },
        ):
            yield

    @staticmethod
    def _ignored(reply: SagaReply, why: str, event: str = "saga.reply_ignored") -> None:
        """Log a reply that changed nothing: ``saga.late_reply`` when the orchestrator had
        given up on that command (a timeout before the pivot, or a superseded attempt)."""
        log.info(
            event,
            saga_id=reply.saga_id,
            step=reply.step,
            command=reply.command,
            attempt=reply.attempt,
            outcome=reply.outcome.value,
            why=why,
        )

    async def _apply(self, uow: SagaUnitOfWork, old: SagaState, transition: Transition) -> None:
        message_ids = await self._publish(uow, transition.commands)
        forward = [
            i
            for i, c in zip(message_ids, transition.commands, strict=True)
            if c.dead_letter_reason is None
        ]
        await uow.sagas.save(
            old, transition.state, command_message_id=forward[-1] if forward else None
        )
        self._report(uow, old, transition)
        deadline = transition.state.deadline
        if deadline is not None and self.on_deadline is not None:
            notify = self.on_deadline
            uow.after_commit(lambda: notify(deadline))

    async def _publish(
        self, uow: SagaUnitOfWork, commands: tuple[OutgoingCommand, ...]
    ) -> list[uuid.UUID]:
        """Stage commands in the outbox; a dead-lettered copy carries the DLQ headers an operator
        (``chassis dlq list|replay``) reads."""
        ids = []
        for outgoing in commands:
            command = outgoing.command
            headers: dict[str, str] = {}
            if outgoing.dead_letter_reason is not None:
                original = f"{self.topic_prefix}{outgoing.topic.removesuffix('.dlq')}"
                headers = {
                    "dlq_error": outgoing.dead_letter_reason[:1000],
                    "dlq_attempts": str(command.attempt - 1),
                    "dlq_original_topic": original,
                    "dlq_consumer_group": REPLY_CONSUMER,
                }
            ids.append(
                await uow.publish(
                    outgoing.topic,
                    command.command,
                    key=command.saga_id,
                    data=command.model_dump(mode="json"),
                    subject=command.saga_id,
                    headers=headers,
                )
            )
        return ids

    def _report(self, uow: SagaUnitOfWork, old: SagaState | None, transition: Transition) -> None:
        """Logs and metrics of a transition, once it is committed."""
        state = transition.state
        ended = state.status is not (old.status if old else None) and state.status not in (
            SagaStatus.RUNNING,
            SagaStatus.COMPENSATING,
        )

        def report() -> None:
            for event in transition.events:
                getattr(log, event.level)(event.name, **event.fields)
                if event.name == "saga.step_retry":
                    metrics.SAGA_STEP_RETRIES.labels(
                        state.type, event.fields["step"], event.fields["reason"]
                    ).inc()
            if not ended:
                return
            counter = {
                SagaStatus.COMPLETED: metrics.SAGA_COMPLETED,
                SagaStatus.COMPENSATED: metrics.SAGA_COMPENSATED,
                SagaStatus.FAILED: metrics.SAGA_FAILED,
            }[state.status]
            counter.labels(state.type).inc()
            seconds = ((state.ended_at or self.clock()) - state.started_at).total_seconds()
            metrics.SAGA_DURATION.labels(state.type, state.status.value).observe(seconds)

        uow.after_commit(report)
