"""Repository: saga instances and their step log in PostgreSQL (the orchestrator's only memory).

Everything the orchestrator knows is in these two tables, so a restarted worker resumes where
the killed one stopped. Rows are locked (``FOR UPDATE``) while a reply or a deadline is applied,
and ``version`` guards against a lost update.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from opentelemetry import propagate
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    bindparam,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import BindParameter

from chassis.db import CompiledSelect, CompiledWrite, UnitOfWork, outbox_table
from saga.orchestrator import (
    ACTIVE_STATUSES,
    Awaiting,
    CompensationStatus,
    SagaState,
    SagaStatus,
    StepLog,
    StepStatus,
)

metadata = MetaData()
_ACTIVE_SQL = "status IN ('RUNNING', 'COMPENSATING')"

saga_instances = Table(
    "saga_instances",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("data", JSONB, nullable=False),
    Column("initiator_id", UUID(as_uuid=True), nullable=False),
    # The value of the definition's exclusive_key (e.g. the member id): see the unique index.
    Column("lock_key", String(200), nullable=True),
    Column("current_step", String(100), nullable=True),
    Column("awaiting_command", String(100), nullable=True),
    Column("awaiting_attempt", Integer, nullable=True),
    Column("awaiting_compensation", Boolean, nullable=False, server_default=text("false")),
    Column("awaiting_dispatched", Boolean, nullable=False, server_default=text("true")),
    # The outbox row of the awaited command: while it is unpublished, a re-send is pointless.
    Column("command_message_id", UUID(as_uuid=True), nullable=True),
    Column("deadline", DateTime(timezone=True), nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("version", Integer, nullable=False),
    # W3C trace context (traceparent, tracestate) current at the last write: work that no
    # message starts (the deadline sweeper, the recovery after a restart) continues the
    # saga's trace from it. NULL when no span was current (tracing off, or before 0004).
    Column("trace_context", JSONB, nullable=True),
    # Declared in migration 0001; stated here too so the model and the database agree.
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{status.value}'" for status in SagaStatus)),
        name="ck_saga_instances_status",
    ),
    # Semantic lock: one running saga per (type, key), e.g. one withdrawal per member.
    Index(
        "uq_saga_instances_running_lock_key",
        "type",
        "lock_key",
        unique=True,
        postgresql_where=text(f"lock_key IS NOT NULL AND {_ACTIVE_SQL}"),
    ),
    # once_per_key: a completed saga takes its key for good.
    Index(
        "ix_saga_instances_completed_lock_key",
        "type",
        "lock_key",
        postgresql_where=text("lock_key IS NOT NULL AND status = 'COMPLETED'"),
    ),
    Index("ix_saga_instances_deadline", "deadline", postgresql_where=text(_ACTIVE_SQL)),
    Index("ix_saga_instances_initiator_id", "initiator_id"),
)

saga_steps = Table(
    "saga_steps",
    metadata,
    Column(
        "saga_id",
        UUID(as_uuid=True),
        ForeignKey("saga_instances.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("participant", String(50), nullable=False),
    Column("command", String(100), nullable=False),
    Column("compensation", String(100), nullable=True),
    Column("forward_status", String(20), nullable=False),
    Column("compensation_status", String(30), nullable=False),
    Column("reason", Text, nullable=True),
    # Re-sends after a timeout and new attempts after a refusal of the forward command.
    Column("retries", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


class ConcurrentUpdate(RuntimeError):
    """The saga changed since it was read; the transaction must be retried."""


@dataclass(frozen=True)
class StoredSaga:
    """A saga as readers see it: the state plus who started it."""

    state: SagaState
    initiator_id: uuid.UUID


def _parse_id(saga_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(saga_id)
    except ValueError:
        return None


def _awaiting_columns(state: SagaState) -> dict[str, Any]:
    awaited = state.awaiting
    return {
        "current_step": awaited.step if awaited else None,
        "awaiting_command": awaited.command if awaited else None,
        "awaiting_attempt": awaited.attempt if awaited else None,
        "awaiting_compensation": awaited.compensating if awaited else False,
        "awaiting_dispatched": awaited.dispatched if awaited else True,
    }


def _current_trace_context() -> dict[str, str] | None:
    """The current span's context as ``traceparent``/``tracestate`` headers; None without one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def _step_columns(log: StepLog) -> dict[str, Any]:
    return {
        "forward_status": log.forward.value,
        "compensation_status": log.compensation.value,
        "reason": log.reason,
        "retries": log.retries,
    }


class SagaRepository:
    """Load and store saga states; remembers the version of what it loaded."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._versions: dict[str, int] = {}
        self._trace_contexts: dict[str, dict[str, str]] = {}

    async def add(
        self,
        state: SagaState,
        *,
        initiator_id: uuid.UUID,
        lock_key: str | None,
        participants: Sequence[tuple[str, str, str | None]],
        command_message_id: uuid.UUID | None,
    ) -> None:
        """Insert a new saga; ``participants`` is (participant, command, compensation) per step."""
        await self.session.execute(
            saga_instances.insert().values(
                id=uuid.UUID(state.id),
                type=state.type,
                status=state.status.value,
                data=dict(state.data),
                initiator_id=initiator_id,
                lock_key=lock_key,
                command_message_id=command_message_id,
                deadline=state.deadline,
                failure_reason=state.failure_reason,
                started_at=state.started_at,
                ended_at=state.ended_at,
                version=1,
                trace_context=_current_trace_context(),
                **_awaiting_columns(state),
            )
        )
        await self.session.execute(
            saga_steps.insert(),
            [
                {
                    "saga_id": uuid.UUID(state.id),
                    "position": position,
                    "name": log.name,
                    "participant": participant,
                    "command": command,
                    "compensation": compensation,
                    **_step_columns(log),
                }
                for position, (log, (participant, command, compensation)) in enumerate(
                    zip(state.steps, participants, strict=True)
                )
            ],
        )
        self._versions[state.id] = 1

    async def save(
        self, old: SagaState, new: SagaState, *, command_message_id: uuid.UUID | None = None
    ) -> None:
        """Write the changes from ``old`` to ``new`` (a state this repository loaded), with the
        trace context current now (:meth:`trace_context` reads it back)."""
        version = self._versions[new.id]
        values: dict[str, Any] = {
            "trace_context": _current_trace_context(),
            "status": new.status.value,
            "data": dict(new.data),
            "deadline": new.deadline,
            "failure_reason": new.failure_reason,
            "ended_at": new.ended_at,
            "updated_at": func.now(),
            "version": version + 1,
            **_awaiting_columns(new),
        }
        if command_message_id is not None:
            values["command_message_id"] = command_message_id
        del values["updated_at"]  # now(), in the statement
        result = await _SAVE[command_message_id is not None].execute(
            self.session, id=uuid.UUID(new.id), expected_version=version, **values
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(f"saga {new.id} changed concurrently")
        self._versions[new.id] = version + 1
        for position, (before, after) in enumerate(zip(old.steps, new.steps, strict=True)):
            if before != after:
                await _SAVE_STEP.execute(
                    self.session,
                    saga_id=uuid.UUID(new.id),
                    position=position,
                    **_step_columns(after),
                )

    def trace_context(self, saga_id: str) -> dict[str, str]:
        """The trace context stored with a saga this repository loaded (``traceparent`` and
        ``tracestate`` headers, for ``opentelemetry.propagate.extract``); empty when none."""
        return self._trace_contexts.get(saga_id, {})

    async def get(self, saga_id: str, *, for_update: bool = False) -> StoredSaga | None:
        parsed = _parse_id(saga_id)
        if parsed is None:
            return None
        row = await _GET[for_update].first(self.session, id=parsed)
        if row is None:
            return None
        return (await self._load([row]))[0]

    async def due(self, now: dt.datetime, limit: int) -> list[SagaState]:
        """In-flight sagas past their deadline, locked; rows another worker holds are skipped."""
        rows = (
            await self.session.execute(
                select(saga_instances)
                .where(saga_instances.c.status.in_([s.value for s in ACTIVE_STATUSES]))
                .where(saga_instances.c.deadline <= now)
                .order_by(saga_instances.c.deadline)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        return [s.state for s in await self._load(rows)]

    async def next_deadline(self, after: dt.datetime) -> dt.datetime | None:
        """The earliest deadline of an in-flight saga later than ``after`` (the partial index
        ``ix_saga_instances_deadline``), None when there is none. Deadlines already passed are
        left out: one a sweep skipped (locked elsewhere) or kept is not a reason to spin."""
        deadline: dt.datetime | None = await self.session.scalar(
            select(func.min(saga_instances.c.deadline))
            .where(saga_instances.c.status.in_([s.value for s in ACTIVE_STATUSES]))
            .where(saga_instances.c.deadline > after)
        )
        return deadline

    async def awaiting_resend(self, limit: int) -> list[SagaState]:
        """In-flight sagas whose awaited command already left the outbox (so it may be lost)."""
        pending = exists().where(
            outbox_table.c.id == saga_instances.c.command_message_id,
            outbox_table.c.published_at.is_(None),
        )
        rows = (
            await self.session.execute(
                select(saga_instances)
                .where(saga_instances.c.status.in_([s.value for s in ACTIVE_STATUSES]))
                .where(saga_instances.c.awaiting_dispatched.is_(True))
                .where(~pending)
                .order_by(saga_instances.c.started_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        return [s.state for s in await self._load(rows)]

    async def postpone_deadlines(self, not_before: dt.datetime) -> int:
        """Give every in-flight step at least until ``not_before`` (after a restart)."""
        result = await self.session.execute(
            update(saga_instances)
            .where(saga_instances.c.status.in_([s.value for s in ACTIVE_STATUSES]))
            .where(saga_instances.c.awaiting_dispatched.is_(True))
            .where(saga_instances.c.deadline < not_before)
            .values(deadline=not_before, version=saga_instances.c.version + 1)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def running_exists(self, saga_type: str, lock_key: str) -> bool:
        found = await self.session.scalar(
            select(saga_instances.c.id)
            .where(saga_instances.c.type == saga_type, saga_instances.c.lock_key == lock_key)
            .where(saga_instances.c.status.in_([s.value for s in ACTIVE_STATUSES]))
            .limit(1)
        )
        return found is not None

    async def completed_exists(self, saga_type: str, lock_key: str) -> bool:
        """A saga of this type and key has COMPLETED (the index ix_saga_instances_completed_lock_key)."""
        found = await self.session.scalar(
            select(saga_instances.c.id)
            .where(saga_instances.c.type == saga_type, saga_instances.c.lock_key == lock_key)
            .where(saga_instances.c.status == SagaStatus.COMPLETED.value)
            .limit(1)
        )
        return found is not None

    async def in_flight_counts(self) -> dict[str, int]:
        rows = (
            await self.session.execute(
                select(saga_instances.c.type, func.count())
                .where(saga_instances.c.status.in_([s.value for s in ACTIVE_STATUSES]))
                .group_by(saga_instances.c.type)
            )
        ).all()
        return {str(t): int(n) for t, n in rows}

    async def overdue_counts(self, before: dt.datetime) -> dict[str, int]:
        """In-flight sagas, by type, whose deadline is earlier than ``before``."""
        rows = (
            await self.session.execute(
                select(saga_instances.c.type, func.count())
                .where(saga_instances.c.status.in_([s.value for s in ACTIVE_STATUSES]))
                .where(saga_instances.c.deadline < before)
                .group_by(saga_instances.c.type)
            )
        ).all()
        return {str(t): int(n) for t, n in rows}

    async def _load(self, rows: Sequence[Row[Any]]) -> list[StoredSaga]:
        ids = [row.id for row in rows]
        logs: dict[uuid.UUID, list[StepLog]] = {i: [] for i in ids}
        step_rows: Any = ()
        if len(ids) == 1:  # a saga by id: the reply path
            step_rows = await _STEPS_OF.all(self.session, saga_id=ids[0])
        elif ids:
            step_rows = await self.session.execute(
                select(saga_steps)
                .where(saga_steps.c.saga_id.in_(ids))
                .order_by(saga_steps.c.saga_id, saga_steps.c.position)
            )
        for s in step_rows:
            logs[s.saga_id].append(
                StepLog(
                    s.name,
                    StepStatus(s.forward_status),
                    CompensationStatus(s.compensation_status),
                    s.reason,
                    s.retries,
                )
            )
        loaded = []
        for row in rows:
            self._versions[str(row.id)] = row.version
            self._trace_contexts[str(row.id)] = dict(row.trace_context or {})
            awaiting = None
            if row.awaiting_command is not None:
                awaiting = Awaiting(
                    row.current_step,
                    row.awaiting_command,
                    row.awaiting_attempt,
                    compensating=row.awaiting_compensation,
                    dispatched=row.awaiting_dispatched,
                )
            state = SagaState(
                id=str(row.id),
                type=row.type,
                status=SagaStatus(row.status),
                data=row.data,
                steps=tuple(logs[row.id]),
                started_at=row.started_at,
                awaiting=awaiting,
                deadline=row.deadline,
                failure_reason=row.failure_reason,
                ended_at=row.ended_at,
            )
            loaded.append(StoredSaga(state, row.initiator_id))
        return loaded


class SagaUnitOfWork(UnitOfWork):
    """The orchestrator's unit of work: sagas, outbox, inbox and idempotency keys in one
    transaction, plus callbacks (logs, metrics) that run only once it committed."""

    sagas: SagaRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], source: str) -> None:
        super().__init__(session_factory, source)
        self._after_commit: list[Callable[[], Awaitable[None] | None]] = []

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.sagas = SagaRepository(self.session)
        self._after_commit = []
        return self

    def after_commit(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        self._after_commit.append(callback)

    async def commit(self) -> None:
        await super().commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            result = callback()
            if result is not None:
                await result


# The statements of a saga reply, compiled once (``chassis.db.CompiledWrite``): each reply loads
# its saga, writes it back, and (mostly) one step.
def _param(table: Table, name: str) -> BindParameter[Any]:
    return bindparam(name, type_=table.c[name].type)


_BY_ID = select(saga_instances).where(saga_instances.c.id == _param(saga_instances, "id"))
#: by ``for_update``
_GET = {False: CompiledSelect(_BY_ID), True: CompiledSelect(_BY_ID.with_for_update())}
_STEPS_OF = CompiledSelect(
    select(saga_steps)
    .where(saga_steps.c.saga_id == _param(saga_steps, "saga_id"))
    .order_by(saga_steps.c.position)
)
_SAVED = (
    "trace_context",
    *("status", "data", "deadline", "failure_reason", "ended_at", "version", "current_step"),
    *("awaiting_command", "awaiting_attempt", "awaiting_compensation", "awaiting_dispatched"),
)
_SAVE = {
    with_command: CompiledWrite(
        update(saga_instances)
        .where(
            saga_instances.c.id == _param(saga_instances, "id"),
            saga_instances.c.version
            == bindparam("expected_version", type_=saga_instances.c.version.type),
        )
        .values(
            updated_at=func.now(),
            **{
                n: _param(saga_instances, n)
                for n in (*_SAVED, *(("command_message_id",) if with_command else ()))
            },
        )
    )
    for with_command in (False, True)
}
_SAVE_STEP = CompiledWrite(
    update(saga_steps)
    .where(
        saga_steps.c.saga_id == _param(saga_steps, "saga_id"),
        saga_steps.c.position == _param(saga_steps, "position"),
    )
    .values(
        updated_at=func.now(),
        **{
            n: _param(saga_steps, n)
            for n in ("forward_status", "compensation_status", "reason", "retries")
        },
    )
)
