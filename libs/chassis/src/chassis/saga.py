"""Saga participant: command/reply messages and an idempotent command handler for orchestrated sagas.

The orchestrator sends a command (an ``Envelope`` whose data is a ``SagaCommand``) to
``saga.<service>.commands``; the participant applies it and answers with a ``SagaReply`` on
``saga.replies``. Both travel through outboxes. Each command is applied once per
``(saga_id, command, attempt)``: the outcome is logged in ``saga_command_log`` in the same
transaction as the effect and the reply, so a redelivered command gets the same reply again
and no second effect. A forward command that arrives after a compensation of its saga was
applied here (a late delivery after a step timeout) is refused without effect. The commands of
one saga are handled one at a time here (a transaction-scoped advisory lock on the saga id), so a
late forward command and its compensation, handled at once by two consumers during a rebalance,
cannot both pass that check.

A command the consumer dead-letters (a payload that fails validation, a handler bug that repeats
with the infrastructure healthy) is answered with a FAILURE reply by ``on_dead_letter``: without
it no reply would come, and at or after the pivot the orchestrator would re-send without end.
The refusal is logged like any outcome, so a re-send of the same attempt gets the same reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert

from chassis.db import CompiledSelect, CompiledWrite, UnitOfWork, saga_command_log_table
from chassis.faults import FaultFlags, FaultMode, kebab
from chassis.logging import get_logger
from chassis.messaging.envelope import Envelope
from chassis.messaging.failures import describe
from chassis.messaging.topics import REPLY_TOPIC

log = get_logger("chassis.saga")

COMMAND_EVENT_TYPE_SUFFIX = ""  # a command's CloudEvent type is the command name itself
REPLY_EVENT_TYPE = "SagaReply"


def command_topic(service: str) -> str:
    return f"saga.{service}.commands"


class Outcome(StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class SagaCommand(BaseModel):
    """Body of a command message."""

    saga_id: str
    saga_type: str
    step: str = Field(description="name of the saga step, e.g. 'transfer-points'")
    command: str = Field(description="command name, e.g. 'TransferPoints'")
    attempt: int = 1
    compensates: str | None = Field(
        default=None, description="for a compensation: the forward command it undoes"
    )
    payload: dict[str, Any] = Field(default_factory=dict)


class SagaReply(BaseModel):
    """Body of a reply message."""

    saga_id: str
    step: str
    command: str
    attempt: int
    outcome: Outcome
    reason: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)


class _CommandKey(BaseModel):
    """The part of a command a reply needs; readable even when the rest of the payload is not."""

    saga_id: str = Field(max_length=64)  # saga_command_log's key columns
    step: str
    command: str = Field(max_length=100)
    attempt: int = 1
    compensates: str | None = None


class CommandRejected(Exception):
    """A participant refuses a command for a business reason; the saga will compensate."""


U = TypeVar("U", bound=UnitOfWork)
CommandHandler = Callable[[U, "SagaCommand"], Awaitable[Mapping[str, Any] | None]]


@dataclass
class SagaParticipant(Generic[U]):
    """Dispatch saga commands for one service to its handlers, once each, and reply."""

    service: str
    uow_factory: Callable[[], U]
    handlers: Mapping[str, CommandHandler[U]]
    faults: FaultFlags | None = None

    async def handle(self, envelope: Envelope) -> None:
        command = SagaCommand.model_validate(envelope.data)
        fault = (
            await self.faults.active(self.service, kebab(command.command)) if self.faults else None
        )
        if fault is not None and fault.mode is FaultMode.DELAY:
            await asyncio.sleep(fault.delay_ms / 1000)
        async with self.uow_factory() as uow:
            await self._lock_saga(uow, command.saga_id)
            reply = await self._previous_reply(uow, command)
            if reply is not None:
                log.info("saga.command_duplicate", saga_id=command.saga_id, command=command.command)
            else:
                reply = await self._apply(
                    uow,
                    command,
                    injected_failure=fault is not None and fault.mode is FaultMode.FAIL,
                )
                await _LOG_OUTCOME.execute(
                    uow.session,
                    saga_id=command.saga_id,
                    command=command.command,
                    attempt=command.attempt,
                    outcome=reply.outcome.value,
                    reason=reply.reason,
                    result=reply.result,
                )
            await _send_reply(uow, reply)
            await uow.commit()
        log.info(
            "saga.command_handled",
            saga_id=command.saga_id,
            command=command.command,
            attempt=command.attempt,
            outcome=reply.outcome.value,
            reason=reply.reason,
        )

    async def on_dead_letter(self, envelope: Envelope, error: BaseException) -> None:
        """Answer a dead-lettered command with a FAILURE reply (reason ``dead-lettered: <error>``),
        through the outbox, and log it as the command's outcome.

        The consumer calls this after the command's DLQ copy was acknowledged (see
        ``ConsumerRunner``), so the orchestrator's refusal rules apply: before the pivot, or the
        pivot refused, it compensates; a retriable step or a compensation refused is retried a
        bounded number of times, then the saga is FAILED. A command whose saga id, step, command
        or attempt cannot be read gets no reply (there is no saga to answer); raises on database
        failures, which the consumer waits out."""
        try:
            key = _CommandKey.model_validate(envelope.data)
        except ValidationError:
            log.error("saga.dead_lettered_unanswerable", event_id=envelope.id, type=envelope.type)
            return
        reason = f"dead-lettered: {describe(error)}"[:1000]
        result: dict[str, Any] = {}
        if key.compensates is not None:
            result["compensates"] = key.compensates
        reply = SagaReply(
            saga_id=key.saga_id,
            step=key.step,
            command=key.command,
            attempt=key.attempt,
            outcome=Outcome.FAILURE,
            reason=reason,
            result=result,
        )
        async with self.uow_factory() as uow:
            await self._lock_saga(uow, key.saga_id)
            logged = await uow.session.execute(
                insert(saga_command_log_table)
                .values(
                    saga_id=key.saga_id,
                    command=key.command,
                    attempt=key.attempt,
                    outcome=reply.outcome.value,
                    reason=reason,
                    result=result,
                )
                .on_conflict_do_nothing()
                .returning(saga_command_log_table.c.saga_id)
            )
            if logged.first() is None:
                # an outcome is already logged (e.g. handled by another member meanwhile): the
                # reply it sent stands (leaving the block rolls back)
                return
            await _send_reply(uow, reply)
            await uow.commit()
        log.warning(
            "saga.command_dead_lettered",
            saga_id=key.saga_id,
            command=key.command,
            attempt=key.attempt,
            reason=reason,
        )

    @staticmethod
    async def _lock_saga(uow: UnitOfWork, saga_id: str) -> None:
        """Serialize the commands of one saga here until the transaction ends."""
        await _LOCK_SAGA.execute(uow.session, key=f"saga_command_log:{saga_id}")

    async def _previous_reply(self, uow: U, command: SagaCommand) -> SagaReply | None:
        row = await _PREVIOUS_OUTCOME.first(
            uow.session, saga_id=command.saga_id, command=command.command, attempt=command.attempt
        )
        if row is None:
            return None
        return SagaReply(
            saga_id=command.saga_id,
            step=command.step,
            command=command.command,
            attempt=command.attempt,
            outcome=Outcome(row.outcome),
            reason=row.reason,
            result=row.result or {},
        )

    async def _compensation_already_applied(self, uow: U, command: SagaCommand) -> bool:
        """True if a compensation of this saga was already applied here (a forward command).

        The orchestrator sends compensations only once its saga stopped going forward, so after
        any compensation of the saga no forward command of it may take effect here: neither the
        compensated step's own command arriving late (a step timeout before the pivot), nor a
        later step's (e.g. ConfirmAcceptance after CancelAcceptance)."""
        if command.compensates is not None:
            return False
        return await _COMPENSATED.first(uow.session, saga_id=command.saga_id) is not None

    async def _apply(self, uow: U, command: SagaCommand, *, injected_failure: bool) -> SagaReply:
        def reply(
            outcome: Outcome, reason: str | None, result: Mapping[str, Any] | None
        ) -> SagaReply:
            body = dict(result or {})
            if command.compensates:
                body["compensates"] = command.compensates
            return SagaReply(
                saga_id=command.saga_id,
                step=command.step,
                command=command.command,
                attempt=command.attempt,
                outcome=outcome,
                reason=reason,
                result=body,
            )

        handler = self.handlers.get(command.command)
        if handler is None:
            return reply(Outcome.FAILURE, f"{self.service} has no command {command.command}", None)
        if injected_failure:
            return reply(
                Outcome.FAILURE,
                f"fault injected into {self.service}/{kebab(command.command)}",
                None,
            )
        if await self._compensation_already_applied(uow, command):
            return reply(Outcome.FAILURE, "a compensation of this saga was already applied", None)
        try:
            async with uow.session.begin_nested():
                result = await handler(uow, command)
        except CommandRejected as exc:
            return reply(Outcome.FAILURE, str(exc), None)
        return reply(Outcome.SUCCESS, None, result)


async def _send_reply(uow: UnitOfWork, reply: SagaReply) -> None:
    """Stage ``reply`` on ``saga.replies`` through the outbox, keyed by its saga (per-saga order)."""
    await uow.publish(
        REPLY_TOPIC,
        REPLY_EVENT_TYPE,
        key=reply.saga_id,
        data=reply.model_dump(mode="json"),
        subject=reply.saga_id,
    )


# Compiled once: each runs for every command a participant handles (docs/chassis.md
# "Statements compiled once"); the log insert is an INSERT SQLAlchemy never caches.
_log = saga_command_log_table
_LOCK_SAGA = CompiledWrite(
    select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=Text()), 0)))
)
_PREVIOUS_OUTCOME = CompiledSelect(
    select(_log.c.outcome, _log.c.reason, _log.c.result).where(
        _log.c.saga_id == bindparam("saga_id", type_=_log.c.saga_id.type),
        _log.c.command == bindparam("command", type_=_log.c.command.type),
        _log.c.attempt == bindparam("attempt", type_=_log.c.attempt.type),
    )
)
_COMPENSATED = CompiledSelect(
    select(_log.c.command)
    .where(_log.c.saga_id == bindparam("saga_id", type_=_log.c.saga_id.type))
    .where(_log.c.result["compensates"].as_string().is_not(None))
    .where(_log.c.outcome == Outcome.SUCCESS.value)
    .limit(1)
)
_LOG_OUTCOME = CompiledWrite(
    insert(_log).values(
        {
            n: bindparam(n, type_=_log.c[n].type)
            for n in ("saga_id", "command", "attempt", "outcome", "reason", "result")
        }
    )
)


PayloadT = TypeVar("PayloadT", bound=BaseModel)


def command_payload(model: type[PayloadT], command: SagaCommand) -> PayloadT:
    """``command.payload`` read as ``model``, the participant's own view of the command (its
    anti-corruption layer: only the fields this participant needs, typed).

    Raises ``CommandRejected`` (a FAILURE reply, so the orchestrator compensates or retries by
    its rules) when the payload does not fit, naming the command and the first field that does
    not: a malformed command is refused, never left to be redelivered as a poison message."""
    try:
        return model.model_validate(command.payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "payload"
        raise CommandRejected(
            f"malformed {command.command} payload: {field}: {first['msg']}"
        ) from exc
