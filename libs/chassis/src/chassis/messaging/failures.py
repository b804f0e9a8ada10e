"""Transient vs permanent failure: which errors a consumer waits out and which go to the dead-letter topic.

docs/CONVENTIONS.md "Failures of consumers". A *transient* failure comes from infrastructure that is
unavailable for a while (a database, Redis or Kafka that refuses or drops connections, a timeout, a
serialization failure or deadlock the database asks the client to retry): the same message will
succeed later, so the consumer retries it, with ``Backoff``, for as long as it takes. A *permanent*
failure can never succeed (an undecodable message, a payload that fails schema validation, or a
handler that raises ``PermanentFailure``): it is dead-lettered. Anything else is *unclassified*: the
consumer tries it a bounded number of times and then asks the process's infrastructure probe; only
when the infrastructure is healthy does the message count as poison.

``classify`` walks the whole chain of an exception (``__cause__``, ``__context__`` and
SQLAlchemy's ``.orig``), because drivers are wrapped: a ``ConnectionRefusedError`` arrives as the
cause of a SQLAlchemy ``DBAPIError``, an ``asyncpg`` error as the cause of its adapter error.
The first exception in the chain that is known decides.

SQLAlchemy's ``InterfaceError`` is not transient in itself: it wraps every ``asyncpg``
``InterfaceError``, and most of those are deterministic (an argument that cannot be encoded, such
as an int32 overflow, or "another operation is in progress"). It counts as transient only when
SQLAlchemy invalidated the connection or a connection error is further down its chain.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

import aiokafka.errors
import asyncpg.exceptions
import httpx
import pydantic
import redis.exceptions
import sqlalchemy.exc

from chassis.messaging.envelope import MalformedMessage

#: Raises when the process's infrastructure (database, Kafka) is unreachable; returns otherwise.
Probe: TypeAlias = Callable[[], Awaitable[object]]


class PermanentFailure(Exception):
    """Raise (or raise from) this in a handler when a message can never be applied, whatever the
    state of the infrastructure: the consumer dead-letters it without further retries."""


class Failure(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNCLASSIFIED = "unclassified"


#: PostgreSQL SQLSTATEs that mean "try again later" (Appendix A of the PostgreSQL manual).
#: Class 08 (connection exception) is matched by its prefix.
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53300",  # too_many_connections
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled (statement_timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, recovering)
        "57P05",  # idle_session_timeout
    }
)

_PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    PermanentFailure,
    MalformedMessage,
    pydantic.ValidationError,
)

#: ``OSError`` numbers of a connection that could not be made or was lost. Python maps some of
#: them to ``ConnectionError`` or ``TimeoutError`` subclasses, the unreachable ones to a bare
#: ``OSError``.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
    }
)

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    # the socket layer: refused, reset, aborted, broken pipe
    ConnectionError,
    # asyncio.TimeoutError is TimeoutError since Python 3.11
    TimeoutError,
    # a name that does not resolve: DNS while a pod or a container restarts
    socket.gaierror,
    # SQLAlchemy: a dropped connection, an exhausted pool (not InterfaceError: see above)
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    # asyncpg: class 08, and a connection the client already knows is closed
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    # redis-py (BusyLoadingError is a ConnectionError)
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    # aiokafka: the broker unreachable or not answering in time
    aiokafka.errors.KafkaConnectionError,
    aiokafka.errors.KafkaTimeoutError,
    aiokafka.errors.RequestTimedOutError,
    aiokafka.errors.NodeNotReadyError,
    # httpx: connect, read and write errors and timeouts (not HTTP status errors)
    httpx.TransportError,
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps, outermost first, each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # sqlalchemy.exc.DBAPIError
        for nxt in (orig, current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _sqlstate(exc: BaseException) -> str | None:
    value: Any = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return value if isinstance(value, str) else None


def _classify_one(exc: BaseException) -> Failure | None:
    if isinstance(exc, _PERMANENT_TYPES):
        return Failure.PERMANENT
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return Failure.TRANSIENT
    if isinstance(exc, _TRANSIENT_TYPES):
        return Failure.TRANSIENT
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return Failure.TRANSIENT
    state = _sqlstate(exc)
    if state is not None and (state.startswith("08") or state in TRANSIENT_SQLSTATES):
        return Failure.TRANSIENT
    if isinstance(exc, asyncpg.exceptions.InterfaceError) and "closed" in str(exc):
        return Failure.TRANSIENT  # "connection is closed": the server went away mid-use
    if isinstance(exc, aiokafka.errors.KafkaError) and exc.retriable:
        return Failure.TRANSIENT  # leader elections, coordinator moves, broker not available
    return None


def classify(exc: BaseException) -> Failure:
    """Transient, permanent or unclassified; the outermost known exception in the chain decides."""
    if isinstance(exc, asyncio.CancelledError):
        raise TypeError("cancellation is not a failure")
    for current in causes(exc):
        verdict = _classify_one(current)
        if verdict is not None:
            return verdict
    return Failure.UNCLASSIFIED


def is_transient(exc: BaseException) -> bool:
    """True when the infrastructure, not the message, made the work fail: retry it later."""
    return classify(exc) is Failure.TRANSIENT


def describe(exc: BaseException) -> str:
    """``Type: message`` of the exception, naming the transient root when a wrapper hides it."""
    text = f"{type(exc).__name__}: {exc}"
    for current in causes(exc):
        if current is not exc and _classify_one(current) is Failure.TRANSIENT:
            return f"{type(current).__name__}: {current}"[:500]
    return text[:500]


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: ``initial * multiplier**(attempt-1)``, at most
    ``cap`` seconds, each delay spread by ±``jitter`` (a fraction) so that replicas waiting out
    the same outage do not retry in step. ``attempt`` counts from 1."""

    initial: float = 0.1
    cap: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def base(self, attempt: int) -> float:
        """The delay before retry number ``attempt``, without jitter (seconds)."""
        exponent = min(max(attempt, 1) - 1, 64)  # far past any cap; keeps the float finite
        return float(min(self.cap, self.initial * self.multiplier**exponent))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = self.base(attempt)
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))


class Action(StrEnum):
    RETRY = "retry"  # an unclassified failure within its bounded attempts
    WAIT = "wait"  # transient: retry for as long as it takes
    DEAD_LETTER = "dead_letter"


def decide(
    failure: Failure,
    unclassified_attempts: int,
    max_attempts: int,
    infrastructure_ok: bool | None,
    *,
    confirmed: bool = False,
) -> Action:
    """What a consumer does after a failed try of one message.

    ``unclassified_attempts`` counts the unclassified failures of this message so far, this one
    included. ``infrastructure_ok`` is the probe's answer, asked only once those reach
    ``max_attempts`` (None before): a failing probe turns the failure into a transient one.
    A healthy probe alone does not condemn the message, since the failure may have happened in
    an outage that ended before the probe: the message gets one more try, and ``confirmed``
    (the previous failure was already followed by a healthy probe) marks that try. Only a
    failure that repeats with the infrastructure healthy is dead-lettered.
    """
    if failure is Failure.PERMANENT:
        return Action.DEAD_LETTER
    if failure is Failure.TRANSIENT:
        return Action.WAIT
    if unclassified_attempts < max_attempts:
        return Action.RETRY
    if infrastructure_ok is False:
        return Action.WAIT
    if infrastructure_ok is True and not confirmed:
        return Action.RETRY
    return Action.DEAD_LETTER


class Outage:
    """One loop's outage: logged once when it starts (with the error) and once when it ends,
    with a ``Backoff`` delay for each failed try in between (logged at debug level only)."""

    def __init__(self, name: str, backoff: Backoff, logger: Any) -> None:
        self.name = name
        self.backoff = backoff
        self.log = logger
        self.tries = 0
        self.started: float | None = None

    @property
    def active(self) -> bool:
        return self.tries > 0

    def failed(self, exc: BaseException) -> float:
        """Record a failed try; returns how long to wait before the next one (seconds)."""
        self.tries += 1
        delay = self.backoff.delay(self.tries)
        if self.tries == 1:
            self.started = time.monotonic()
            self.log.warning(
                "outage.started",
                loop=self.name,
                transient=is_transient(exc),
                error=describe(exc),
                retry_in=round(delay, 3),
                exc_info=not is_transient(exc),
            )
        else:
            self.log.debug("outage.retry", loop=self.name, attempt=self.tries, delay=delay)
        return delay

    def succeeded(self) -> None:
        """A try went through: log the end of the outage, if there was one, and reset."""
        if self.tries:
            self.log.info(
                "outage.ended",
                loop=self.name,
                tries=self.tries,
                seconds=round(time.monotonic() - (self.started or time.monotonic()), 3),
            )
        self.tries = 0
        self.started = None
