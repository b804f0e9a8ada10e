"""Database per service and Unit of Work: an async engine per process, one transaction per use case."""

from __future__ import annotations

import datetime as dt
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any, Self

from fastapi import Depends, Request
from opentelemetry import propagate
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    event,
    exc,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as _asyncpg_dialect
from sqlalchemy.engine import CursorResult, Dialect, Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

from chassis.tracing import instrument_engine

#: ``NOTIFY`` channel that wakes the outbox relay when a transaction that staged events commits.
OUTBOX_CHANNEL = "outbox_messages"

#: Tables the chassis owns inside every service database (created by each service's migration).
chassis_metadata = MetaData()
_Json = JSON().with_variant(JSONB(), "postgresql")

outbox_table = Table(
    "outbox_messages",
    chassis_metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("topic", String(200), nullable=False),
    Column("key", String(200), nullable=False),
    Column("type", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("subject", String(200), nullable=True),
    Column("payload", _Json, nullable=False),
    Column("headers", _Json, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Index(
        "ix_outbox_unpublished",
        "seq",
        postgresql_where=text("published_at IS NULL"),
    ),
)

inbox_table = Table(
    "inbox_messages",
    chassis_metadata,
    Column("consumer", String(200), primary_key=True),
    Column("message_id", String(200), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

saga_command_log_table = Table(
    "saga_command_log",
    chassis_metadata,
    Column("saga_id", String(64), primary_key=True),
    Column("command", String(100), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("outcome", String(20), nullable=False),
    Column("reason", Text, nullable=True),
    Column("result", _Json, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

idempotency_table = Table(
    "idempotency_keys",
    chassis_metadata,
    Column("scope", String(300), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", _Json, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

projection_checkpoint_table = Table(
    "projection_checkpoints",
    chassis_metadata,
    Column("projection", String(100), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """Create the process's engine (call it in the lifespan, never at import time).

    Pooled connections are not pinged before use: SQLAlchemy's ``pool_pre_ping`` costs three
    round trips per checkout with asyncpg (BEGIN, an empty statement, ROLLBACK), more than
    the queries of a short read. Instead a connection the server has closed (a PostgreSQL
    restart, ``pg_terminate_backend``) is noticed at checkout from its socket, without a
    round trip, and replaced (``_discard_closed``); one that fails in use is invalidated with
    the rest of the pool by SQLAlchemy's disconnect handling, and a read on a ``ReadSession``
    is retried once on a fresh connection (``ReadOnlySession``)."""
    engine = _create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        echo=echo,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed)
    instrument_engine(engine.sync_engine)
    return engine


def _discard_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool ``checkout`` hook: a connection whose socket the server closed is replaced.

    Raising ``DisconnectionError`` makes the pool invalidate this record and check out (or
    open) another, up to three times (SQLAlchemy, "Disconnect Handling - Pessimistic",
    custom checkout). asyncpg notices the server's close as soon as the event loop reads it,
    so this costs an attribute read, not a round trip."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(driver, "is_closed", None)
    if is_closed is not None and is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


class ReadOnlySession(AsyncSession):
    """A session for queries only, on connections in autocommit: no BEGIN, no ROLLBACK.

    Each statement is its own implicit transaction, with its own snapshot, which is what
    PostgreSQL's default READ COMMITTED gives the statements of one transaction as well; a
    read that needs one snapshot for several statements uses a ``UnitOfWork`` instead.
    A statement that fails because its pooled connection was dropped (SQLAlchemy marks the
    error ``connection_invalidated``) is run once more on a fresh connection: a read is
    idempotent. Never write through it: each write would commit on its own."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute(*args, **kwargs)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        await self.rollback()  # releases the invalidated connection
        return await super().execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().scalar(*args, **kwargs)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        await self.rollback()
        return await super().scalar(*args, **kwargs)

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().scalars(*args, **kwargs)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        await self.rollback()
        return await super().scalars(*args, **kwargs)


@dataclass(frozen=True)
class _CompiledForm:
    """A statement's SQL for one dialect, its parameters in placeholder order, the values of
    its own constants, and the bind processors of the parameters whose type has one."""

    dialect: Dialect
    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]

    @classmethod
    def of(cls, statement: ClauseElement, dialect: Dialect) -> _CompiledForm:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # a statement compiles to SQL
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        if "__[POSTCOMPILE_" in compiled.string or any(binds[n].expanding for n in names):
            raise ValueError(f"not compilable once (a value rendered at execution): {compiled}")
        processors = []
        for i, name in enumerate(names):
            processor = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors.append((i, processor))
        return cls(
            dialect,
            compiled.string,
            names,
            {n: binds[n].value for n in names if not binds[n].required},
            tuple(processors),
        )

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        defaults = self.defaults
        try:
            params = [values[n] if n in values else defaults[n] for n in self.names]
        except KeyError as missing:
            raise TypeError(f"no value for the parameter {missing}") from None
        for i, processor in self.processors:
            params[i] = processor(params[i])
        return tuple(params)


class _CompiledOnce:
    """A statement written with SQLAlchemy Core, compiled once per dialect, run as SQL through
    the session's connection (see :class:`CompiledSelect` and :class:`CompiledWrite`)."""

    def __init__(self, statement: Executable) -> None:
        if not isinstance(statement, ClauseElement):
            raise TypeError(f"not a SQL statement: {statement!r}")
        self.statement = statement
        # checked now, so a statement that cannot be compiled once fails at import
        self._form = _CompiledForm.of(statement, _asyncpg_dialect())  # type: ignore[no-untyped-call]

    def _for(self, dialect: Dialect) -> _CompiledForm:
        form = self._form
        if form.dialect is not dialect:
            form = self._form = _CompiledForm.of(self.statement, dialect)
        return form

    def sql(self, dialect: Dialect) -> str:
        """The SQL sent on a connection of ``dialect``."""
        return self._for(dialect).sql

    async def _run(self, session: AsyncSession, values: Mapping[str, Any]) -> CursorResult[Any]:
        connection = await session.connection()
        form = self._for(connection.dialect)
        return await connection.exec_driver_sql(form.sql, form.parameters(values))


class CompiledSelect(_CompiledOnce):
    """A read statement written with SQLAlchemy Core, compiled once, run per request as SQL.

    ``session.execute(select(...))`` builds the statement's cache key, looks its compiled form
    up and wraps every row on each call: for a list page that was most of its CPU (about
    0.6 of 1 ms per request, docs/chassis.md "The read path"). A hot read is instead built
    once with named ``bindparam``s for what varies and compiled at its first use for the
    connection's dialect (asyncpg: ``$1``, ``$2`` ... placeholders; compiled for the
    connected dialect, which knows the server's settings, e.g. how a backslash is written in
    a string). Each call sends that SQL with its values through
    ``AsyncConnection.exec_driver_sql`` on the session's connection: the engine's events
    still run (the client span per statement, disconnect handling) and asyncpg's prepared
    statement cache serves it. Rows come back as the driver gives them (a UUID as
    ``uuid.UUID``, a timestamp as an aware ``datetime``), named as the SQL's columns.

    Raises ``ValueError`` when built for a statement that cannot be compiled once (an
    expanding ``IN`` parameter, a value rendered at execution); :meth:`all` raises
    ``TypeError`` for a required parameter without a value."""

    async def all(self, session: AsyncSession, **values: Any) -> Sequence[Row[Any]]:
        """Every row for ``values`` (parameter name -> value), on ``session``'s connection (in
        its transaction, if any). On a ``ReadOnlySession`` a statement whose pooled connection
        was dropped is run once more on a fresh one, as ``ReadOnlySession.execute`` does."""
        try:
            return (await self._run(session, values)).all()
        except exc.DBAPIError as error:
            if not (isinstance(session, ReadOnlySession) and error.connection_invalidated):
                raise
        await session.rollback()  # releases the invalidated connection
        return (await self._run(session, values)).all()

    async def first(self, session: AsyncSession, **values: Any) -> Row[Any] | None:
        """The first row for ``values``, or None: :meth:`all` for a statement of one row."""
        rows = await self.all(session, **values)
        return rows[0] if rows else None


class CompiledWrite(_CompiledOnce):
    """A write on the hot path (``INSERT ... ON CONFLICT``, ``UPDATE``, ``DELETE``, a locking
    ``SELECT pg_advisory_xact_lock(...)``) compiled once and run per message as SQL.

    Why: SQLAlchemy never caches a PostgreSQL ``INSERT ... ON CONFLICT``
    (``sqlalchemy.dialects.postgresql.Insert`` has no cache key), so the inbox record, the
    projection checkpoint and every read-model upsert were compiled again for each event,
    and a cached statement still pays its cache key and the ORM session's execution on each
    call (docs/chassis.md "Statements compiled once"). Build the statement once (at import,
    or once per table for a read model whose rebuild writes fresh copies) with a named
    ``bindparam`` for every value that varies, typed as its column (``bindparam("id",
    type_=table.c.id.type)``) so its bind processor (JSON, for one) runs; a literal value in
    the statement is kept as the default of its anonymous parameter.

    :meth:`execute` runs it through ``AsyncConnection.exec_driver_sql`` on the session's
    connection, *inside its transaction* (begun if it was not): the unit of work still commits
    or rolls it back with everything else, and the engine's events still run (the client span,
    disconnect handling). It does not autoflush the ORM session: nothing it reads may be
    pending there (the chassis' sessions hold no ORM objects). Returns the ``CursorResult``:
    ``rowcount`` (rows written), and the ``RETURNING`` rows as the driver gives them
    (``.first()``, ``.scalar()``, ``.all()``).

    Raises ``ValueError`` when built for a statement that cannot be compiled once (an
    expanding ``IN`` parameter, a value rendered at execution); :meth:`execute` raises
    ``TypeError`` for a required parameter without a value, and the driver's errors as
    ``sqlalchemy.exc.DBAPIError`` (e.g. ``IntegrityError``)."""

    async def execute(self, session: AsyncSession, **values: Any) -> CursorResult[Any]:
        """Run the statement with ``values`` (parameter name -> value) in ``session``'s
        transaction; see the class."""
        return await self._run(session, values)


_read_factories: weakref.WeakKeyDictionary[
    async_sessionmaker[AsyncSession], async_sessionmaker[ReadOnlySession]
] = weakref.WeakKeyDictionary()


def read_session_factory(
    sessions: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[ReadOnlySession]:
    """The ``ReadOnlySession`` factory on the same engine (and pool) as ``sessions``, built
    once per factory: its connections are checked out in autocommit and handed back to the
    pool at their default isolation level."""
    found = _read_factories.get(sessions)
    if found is None:
        engine: AsyncEngine = sessions.kw["bind"]
        found = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"),
            class_=ReadOnlySession,
            expire_on_commit=False,
            autoflush=False,
        )
        _read_factories[sessions] = found
    return found


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UnitOfWork:
    """One business transaction. Rolls back unless ``commit()`` is called.

    Integration events are added to the outbox *inside* the same transaction as the state
    change (``publish``), and consumers record handled message ids in the inbox
    (``first_delivery``) in the same transaction as their effect.
    """

    session: AsyncSession

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], source: str) -> None:
        self._session_factory = session_factory
        self.source = source
        self._committed = False
        self._notified = False

    async def __aenter__(self) -> Self:
        self.session = self._session_factory()
        self._committed = False
        self._notified = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()
        self._committed = True
        self._notified = False

    async def rollback(self) -> None:
        await self.session.rollback()
        self._notified = False

    async def publish(
        self,
        topic: str,
        event_type: str,
        key: str,
        data: Mapping[str, Any],
        *,
        subject: str | None = None,
        headers: Mapping[str, str] | None = None,
        event_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Transactional outbox: stage an event; the relay publishes it after commit."""
        carrier: dict[str, str] = dict(headers or {})
        propagate.inject(carrier)  # the trace continues from the request that caused the event
        message_id = event_id or uuid.uuid4()
        await _STAGE_EVENT.execute(
            self.session,
            id=message_id,
            topic=topic,
            key=key,
            type=event_type,
            source=self.source,
            subject=subject if subject is not None else key,
            payload=dict(data),
            headers=carrier,
            occurred_at=utcnow(),
        )
        if not self._notified and self.session.bind.dialect.name == "postgresql":
            # Transactional: delivered to the relay only if and when this transaction commits.
            await _NOTIFY_RELAY.execute(self.session)
            self._notified = True
        return message_id

    async def first_delivery(self, consumer: str, message_id: str) -> bool:
        """Idempotent consumer (inbox): True the first time ``message_id`` is seen by ``consumer``."""
        result = await _RECORD_DELIVERY.execute(
            self.session, consumer=consumer, message_id=message_id
        )
        return result.first() is not None


def _values_of(table: Table, *names: str) -> dict[str, BindParameter[Any]]:
    """A named parameter per column, typed as the column (its bind processor runs)."""
    return {n: bindparam(n, type_=table.c[n].type) for n in names}


#: The outbox row of :meth:`UnitOfWork.publish` (compiled once: it runs for every event).
_STAGE_EVENT = CompiledWrite(
    outbox_table.insert().values(
        _values_of(
            outbox_table,
            *("id", "topic", "key", "type", "source", "subject", "payload", "headers"),
            "occurred_at",
        )
    )
)
_NOTIFY_RELAY = CompiledWrite(text(f"NOTIFY {OUTBOX_CHANNEL}"))
#: The inbox record of :meth:`UnitOfWork.first_delivery`: a row back only the first time.
_RECORD_DELIVERY = CompiledWrite(
    insert(inbox_table)
    .values(_values_of(inbox_table, "consumer", "message_id"))
    .on_conflict_do_nothing()
    .returning(inbox_table.c.message_id)
)


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    # A connection is checked out only at the first statement: a route that answers from a
    # cache never takes one.
    async with read_session_factory(request.app.state.sessions)() as session:
        yield session


#: A route's session for queries only (the CQRS read side): a ``ReadOnlySession`` on the engine
#: of ``app.state.sessions``, without a transaction, closed after the response.
ReadSession = Annotated[AsyncSession, Depends(_read_session)]
