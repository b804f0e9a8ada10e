"""Transient vs permanent failure: the classification table, the backoff schedule and the consumer's decision."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from typing import Any

import aiokafka.errors
import asyncpg
import asyncpg.exceptions
import asyncpg.exceptions._base
import httpx
import pydantic
import pytest
import redis.exceptions
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.ext.asyncio import create_async_engine

from chassis.messaging.envelope import MalformedMessage
from chassis.messaging.failures import (
    Action,
    Backoff,
    Failure,
    Outage,
    PermanentFailure,
    causes,
    classify,
    decide,
    describe,
    is_transient,
)


def chained(outer: BaseException, inner: BaseException, *, explicit: bool = True) -> BaseException:
    """``outer`` raised while handling ``inner`` (``raise outer from inner`` when explicit)."""
    try:
        try:
            raise inner
        except BaseException:
            if explicit:
                raise outer from inner
            raise outer  # noqa: B904 - only the implicit __context__ links them
    except BaseException as exc:
        return exc
    raise AssertionError("unreachable")


def wrapped_by_sqlalchemy(orig: BaseException, *, invalidated: bool = False) -> BaseException:
    """What SQLAlchemy raises around a driver error: a DBAPIError subclass with ``.orig``."""
    return sqlalchemy.exc.DBAPIError.instance(
        "SELECT 1", {}, orig, Exception, connection_invalidated=invalidated
    )


def through_asyncpg_dialect(error: Exception, *, invalidated: bool = False) -> BaseException:
    """What SQLAlchemy's asyncpg dialect raises around an asyncpg error: the adapter's DBAPI
    exception raised from it (``_handle_exception``), wrapped in a SQLAlchemy ``DBAPIError``
    subclass chosen by the adapter class's name."""
    dbapi = AsyncAdapt_asyncpg_dbapi(asyncpg)  # type: ignore[no-untyped-call]
    translate: dict[type[BaseException], type[Exception]] = dbapi._asyncpg_error_translate
    adapter_type = next(translate[t] for t in type(error).__mro__ if t in translate)
    try:
        try:
            raise error
        except Exception as inner:
            raise adapter_type(f"{type(inner)}: {inner}") from inner
    except Exception as translated:
        return sqlalchemy.exc.DBAPIError.instance(
            "SELECT $1::int4",
            (3_000_000_000,),
            translated,
            dbapi.Error,
            connection_invalidated=invalidated,
        )
    raise AssertionError("unreachable")


def _int32_overflow() -> Exception:
    # the client-side encoding error (not the server's class 22 DataError of the same name)
    error: Exception = asyncpg.exceptions._base.DataError(
        "invalid input for query argument $1: 3000000000 (value out of int32 range)"
    )
    return error


def _unresolvable_host() -> BaseException:
    try:
        socket.getaddrinfo("no-such-host.invalid", 5432)
    except socket.gaierror as exc:
        return exc
    raise AssertionError("unreachable")


class _Strict(pydantic.BaseModel):
    widget_id: str


def _validation_error() -> pydantic.ValidationError:
    try:
        _Strict.model_validate({})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def _wait_for_timeout() -> BaseException:
    async def slow() -> None:
        await asyncio.sleep(1)

    try:
        asyncio.run(asyncio.wait_for(slow(), 0.001))
    except TimeoutError as exc:
        return exc
    raise AssertionError("unreachable")


TRANSIENT: list[tuple[str, BaseException]] = [
    ("connection refused", ConnectionRefusedError(111, "Connect call failed")),
    ("connection reset", ConnectionResetError(104, "Connection reset by peer")),
    ("broken pipe", BrokenPipeError(32, "Broken pipe")),
    ("EPIPE", OSError(errno.EPIPE, "Broken pipe")),
    ("ECONNABORTED", OSError(errno.ECONNABORTED, "Software caused connection abort")),
    ("ETIMEDOUT", OSError(errno.ETIMEDOUT, "Connection timed out")),
    ("EHOSTUNREACH", OSError(errno.EHOSTUNREACH, "No route to host")),
    ("ENETUNREACH", OSError(errno.ENETUNREACH, "Network is unreachable")),
    ("DNS lookup failed", _unresolvable_host()),
    (
        "sqlalchemy around unreachable host",
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, OSError(errno.EHOSTUNREACH, "No route")),
    ),
    ("timeout", TimeoutError()),
    ("asyncio.wait_for timeout", _wait_for_timeout()),
    ("asyncpg admin shutdown 57P01", asyncpg.exceptions.AdminShutdownError("terminating")),
    ("asyncpg crash shutdown 57P02", asyncpg.exceptions.CrashShutdownError("crash")),
    ("asyncpg cannot connect now 57P03", asyncpg.exceptions.CannotConnectNowError("starting")),
    ("asyncpg connection failure 08006", asyncpg.exceptions.ConnectionFailureError("lost")),
    ("asyncpg connection gone 08003", asyncpg.exceptions.ConnectionDoesNotExistError("gone")),
    ("asyncpg serialization 40001", asyncpg.exceptions.SerializationError("could not serialize")),
    ("asyncpg deadlock 40P01", asyncpg.exceptions.DeadlockDetectedError("deadlock detected")),
    ("asyncpg too many connections", asyncpg.exceptions.TooManyConnectionsError("too many")),
    ("asyncpg statement timeout", asyncpg.exceptions.QueryCanceledError("statement timeout")),
    ("asyncpg closed connection", asyncpg.exceptions.InterfaceError("connection is closed")),
    (
        "sqlalchemy operational",
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed")),
    ),
    (
        "sqlalchemy interface around a closed asyncpg connection",
        through_asyncpg_dialect(asyncpg.exceptions.InterfaceError("connection is closed")),
    ),
    (
        "sqlalchemy interface around a refusal",
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, ConnectionRefusedError(111, "refused")),
    ),
    (
        "sqlalchemy interface, connection invalidated",
        through_asyncpg_dialect(
            asyncpg.exceptions.InterfaceError("cannot perform operation"), invalidated=True
        ),
    ),
    ("sqlalchemy disconnection", sqlalchemy.exc.DisconnectionError("pre-ping failed")),
    ("sqlalchemy pool timeout", sqlalchemy.exc.TimeoutError("QueuePool limit reached")),
    (
        "sqlalchemy connection invalidated",
        wrapped_by_sqlalchemy(Exception("unknown driver error"), invalidated=True),
    ),
    (
        "sqlalchemy around asyncpg shutdown",
        wrapped_by_sqlalchemy(asyncpg.exceptions.AdminShutdownError("terminating")),
    ),
    ("redis connection", redis.exceptions.ConnectionError("Error 111 connecting")),
    ("redis timeout", redis.exceptions.TimeoutError("Timeout reading from socket")),
    ("redis loading", redis.exceptions.BusyLoadingError("Redis is loading the dataset")),
    ("kafka connection", aiokafka.errors.KafkaConnectionError("no broker")),
    ("kafka timeout", aiokafka.errors.KafkaTimeoutError()),
    ("kafka request timed out", aiokafka.errors.RequestTimedOutError()),
    ("kafka node not ready", aiokafka.errors.NodeNotReadyError()),
    ("kafka retriable: leader moved", aiokafka.errors.NotLeaderForPartitionError()),
    ("kafka retriable: coordinator", aiokafka.errors.GroupCoordinatorNotAvailableError()),
    ("httpx connect", httpx.ConnectError("refused")),
    ("httpx read timeout", httpx.ReadTimeout("slow")),
    # wrapped by our own code: the chain decides, whatever the wrapper's type
    (
        "ValueError raised from a refusal",
        chained(ValueError("could not load member"), ConnectionRefusedError()),
    ),
    (
        "RuntimeError raised while handling a reset",
        chained(RuntimeError("failed"), ConnectionResetError(), explicit=False),
    ),
]

PERMANENT: list[tuple[str, BaseException]] = [
    ("explicit", PermanentFailure("the post does not exist and never will")),
    ("malformed message", MalformedMessage("not a CloudEvent")),
    ("schema validation", _validation_error()),
    # the outermost known exception decides: the handler said "never", whatever caused it
    (
        "permanent raised from a timeout",
        chained(PermanentFailure("bad payload"), TimeoutError()),
    ),
]

UNCLASSIFIED: list[tuple[str, BaseException]] = [
    ("a bug", KeyError("widget_id")),
    ("a business rule", ValueError("bounty must be positive")),
    ("asyncpg unique violation", asyncpg.exceptions.UniqueViolationError("duplicate key")),
    (
        "sqlalchemy integrity error",
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
    ),
    ("asyncpg misuse", asyncpg.exceptions.InterfaceError("another operation is in progress")),
    # SQLAlchemy maps every asyncpg InterfaceError to its InterfaceError; these are deterministic
    ("sqlalchemy interface around an int32 overflow", through_asyncpg_dialect(_int32_overflow())),
    (
        "sqlalchemy interface around a concurrent use",
        through_asyncpg_dialect(
            asyncpg.exceptions.InterfaceError(
                "cannot perform operation: another operation is in progress"
            )
        ),
    ),
    (
        "sqlalchemy interface around nothing known",
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("x")),
    ),
    ("a file that is missing", FileNotFoundError(errno.ENOENT, "No such file")),
    ("redis wrong type", redis.exceptions.ResponseError("WRONGTYPE")),
    ("kafka message too large", aiokafka.errors.MessageSizeTooLargeError()),
    (
        "httpx status error",
        httpx.HTTPStatusError(
            "404",
            request=httpx.Request("GET", "http://x"),
            response=httpx.Response(404),
        ),
    ),
]


@pytest.mark.parametrize(("name", "exc"), TRANSIENT, ids=[n for n, _ in TRANSIENT])
def test_infrastructure_errors_are_transient(name: str, exc: BaseException) -> None:
    assert classify(exc) is Failure.TRANSIENT
    assert is_transient(exc)


@pytest.mark.parametrize(("name", "exc"), PERMANENT, ids=[n for n, _ in PERMANENT])
def test_messages_that_can_never_succeed_are_permanent(name: str, exc: BaseException) -> None:
    assert classify(exc) is Failure.PERMANENT
    assert not is_transient(exc)


@pytest.mark.parametrize(("name", "exc"), UNCLASSIFIED, ids=[n for n, _ in UNCLASSIFIED])
def test_other_errors_are_unclassified(name: str, exc: BaseException) -> None:
    assert classify(exc) is Failure.UNCLASSIFIED


async def test_a_real_refused_database_connection_through_sqlalchemy_is_transient() -> None:
    # Port 1 on loopback refuses at once: the exact shape the consumer met during the restart.
    engine = create_async_engine("postgresql+asyncpg://u:p@127.0.0.1:1/none")
    try:
        with pytest.raises(OSError, match=r"Connect call failed|refused") as caught:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert classify(caught.value) is Failure.TRANSIENT


async def test_a_real_refused_redis_connection_is_transient() -> None:
    client: Any = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        with pytest.raises(redis.exceptions.ConnectionError) as caught:
            await client.get("k")
    finally:
        await client.aclose()
    assert classify(caught.value) is Failure.TRANSIENT


def test_cancellation_is_not_a_failure() -> None:
    with pytest.raises(TypeError):
        classify(asyncio.CancelledError())


def test_describe_names_the_transient_root_behind_a_wrapper() -> None:
    exc = chained(ValueError("could not load member"), ConnectionRefusedError(111, "refused"))
    assert describe(exc).startswith("ConnectionRefusedError")
    assert describe(KeyError("x")) == "KeyError: 'x'"


def test_a_chain_that_loops_is_walked_once() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    assert [str(e) for e in causes(a)] == ["a", "b"]
    assert classify(a) is Failure.UNCLASSIFIED


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.1, cap=10.0)
    schedule = [backoff.base(n) for n in range(1, 11)]
    assert schedule == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0])
    assert backoff.base(10_000) == 10.0  # no overflow after a very long outage
    assert backoff.base(0) == 0.1


def test_backoff_jitter_stays_within_its_fraction_and_spreads_replicas() -> None:
    backoff = Backoff(initial=1.0, cap=8.0, jitter=0.2)
    rng = random.Random(7)
    delays = [backoff.delay(4, rng) for _ in range(200)]
    assert all(6.4 <= d <= 9.6 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100
    assert Backoff(initial=1.0, cap=8.0, jitter=0).delay(4) == 8.0


@pytest.mark.parametrize(
    ("failure", "attempts", "probe", "action"),
    [
        (Failure.TRANSIENT, 1, None, Action.WAIT),
        (Failure.TRANSIENT, 50, None, Action.WAIT),  # never dead-lettered, however long
        (Failure.PERMANENT, 1, None, Action.DEAD_LETTER),  # at once: retrying cannot help
        (Failure.UNCLASSIFIED, 1, None, Action.RETRY),
        (Failure.UNCLASSIFIED, 2, None, Action.RETRY),
        # a healthy probe earns one more try: the failure may date from an outage now over
        (Failure.UNCLASSIFIED, 3, True, Action.RETRY),
        (Failure.UNCLASSIFIED, 3, False, Action.WAIT),  # the probe failed: an outage after all
        (Failure.UNCLASSIFIED, 9, False, Action.WAIT),
    ],
)
def test_the_consumer_decision(
    failure: Failure, attempts: int, probe: bool | None, action: Action
) -> None:
    assert decide(failure, attempts, 3, probe) is action


@pytest.mark.parametrize(
    ("failure", "probe", "action"),
    [
        (Failure.UNCLASSIFIED, True, Action.DEAD_LETTER),  # repeats with the infra healthy
        (Failure.UNCLASSIFIED, False, Action.WAIT),  # the infra went down meanwhile
        (Failure.TRANSIENT, None, Action.WAIT),
        (Failure.PERMANENT, None, Action.DEAD_LETTER),
    ],
)
def test_the_try_after_a_healthy_probe(
    failure: Failure, probe: bool | None, action: Action
) -> None:
    assert decide(failure, 4, 3, probe, confirmed=True) is action


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str, event: str, **fields: Any) -> None:
        self.events.append((level, event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self._record("warning", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._record("info", event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._record("debug", event, **fields)


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() -> None:
    log = RecordingLog()
    outage = Outage("outbox relay", Backoff(initial=0.5, cap=2.0, jitter=0), log)
    delays = [outage.failed(ConnectionRefusedError()) for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert outage.active
    outage.succeeded()
    outage.succeeded()  # a healthy loop logs nothing more
    levels = [(level, event) for level, event, _ in log.events]
    assert levels.count(("warning", "outage.started")) == 1
    assert levels.count(("info", "outage.ended")) == 1
    assert levels.count(("debug", "outage.retry")) == 4
    assert log.events[-1][2]["tries"] == 5
    assert not outage.active
    assert outage.failed(TimeoutError()) == 0.5  # the next outage starts from the beginning
