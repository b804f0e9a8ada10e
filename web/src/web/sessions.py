"""Backend-for-Frontend token handling: the browser holds only an opaque HttpOnly session cookie; the access and refresh tokens stay server-side in Redis.

This is the pattern the IETF's "OAuth 2.0 for Browser-Based Applications" recommends for
browser apps: the BFF keeps tokens out of reach of any script on the page, and the browser's
cookie is worthless anywhere but here.

- **Cookie.** ``msa_session`` = 256 random bits (``secrets.token_urlsafe(32)``), ``HttpOnly;
  SameSite=Lax; Path=/``; over TLS also ``Secure`` and the ``__Host-`` name prefix, which a
  browser accepts only from a secure origin, for the whole host, without a ``Domain``. The
  scheme is the one uvicorn resolved from ``X-Forwarded-Proto`` of a trusted hop (the gateway).
- **Store.** Redis keeps ``sha256(cookie)`` -> ``Session`` (``web.adapters.session_records``).
  A signed-in session lives ``SESSION_IDLE_SECONDS`` after its last request (sliding, renewed
  at most once a minute) and never past ``SESSION_MAX_AGE_SECONDS`` after sign-in; a guest
  session, made only when a page with a form is shown, holds just the CSRF token and lives
  ``ANON_SESSION_SECONDS``. Signing in always starts a new session id (no session fixation).
- **Refresh, single-flight.** An access token closer than ``REFRESH_MARGIN_SECONDS`` to its
  expiry is refreshed before use. Member rotates refresh tokens and treats the reuse of a spent
  one as theft, revoking the whole family (DESIGN §4), so two tabs of one member that refreshed
  at once would log that member out everywhere. Hence one refresh per session at a time: one
  task per session in this process, and across replicas a Redis lock (``SET NX PX``) whose
  waiters watch the session for the new pair; the holder writes the pair only if the session
  still has the refresh token it used (compare-and-set). A refusal of the refresh ends the
  session (``SessionEnded``); an outage keeps it (``ApiError`` 503, "try again").
- **Redis down.** ``SignInUnavailable``: the pages decide (guests read on, writes are refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from chassis.logging import get_logger
from web.adapters.gateway_client import ApiError, GatewayPort
from web.adapters.session_records import RecordsUnavailable, SessionRecords
from web.config import Settings

log = get_logger(__name__)

#: The session cookie's name over plain HTTP ...
SESSION_COOKIE = "msa_session"
#: ... and over TLS: the ``__Host-`` prefix makes the browser refuse it unless it is ``Secure``,
#: ``Path=/`` and has no ``Domain`` (RFC 6265bis §4.1.3.2), so a sibling host cannot plant one.
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
#: A session's TTL is renewed when its last renewal is at least this old (seconds).
TOUCH_INTERVAL_SECONDS = 60
#: How long a refresh may hold the cross-replica lock (ms): longer than the refresh call's
#: deadline, so a holder that died frees it.
REFRESH_LOCK_MS = 10_000
#: A waiter for another replica's refresh re-reads the session this often (s), this many times.
REFRESH_POLL_SECONDS = 0.05
REFRESH_POLLS = 40
#: Deadline of the refresh call (s): a request waits at most this long for a new token.
REFRESH_TIMEOUT_SECONDS = 5.0
#: API statuses of a refresh that mean the refresh token is spent (expired, revoked, reused,
#: the account not active): the session cannot go on.
REFRESH_REFUSED = frozenset({400, 401, 403, 404, 422})

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SignInUnavailable(Exception):
    """The session store (Redis) cannot be reached: no sign-in, no form, guests read on."""


class SessionEnded(Exception):
    """The session is over (its refresh token was refused): sign in again. ``session`` is the
    session as it was, e.g. to see whether it had started a withdrawal."""

    def __init__(self, session: Session, reason: str = "refresh refused") -> None:
        super().__init__(reason)
        self.session = session


@dataclass(frozen=True)
class Flash:
    """A one-shot message for the next page (``kind``: ``info``, ``ok`` or ``error``)."""

    text: str
    kind: str = "info"


@dataclass
class Session:
    """One browser's session as stored in Redis under ``web:session:{sha256(cookie)}``.

    ``key`` is that hash (never the cookie itself); ``csrf`` is the synchronizer token every
    form of this session carries. A guest session has no ``member_id`` and no tokens. Times
    are epoch seconds."""

    key: str
    csrf: str
    member_id: str | None = None
    nickname: str | None = None
    role: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    #: epoch seconds
    access_expires_at: float = 0.0
    created_at: float = 0.0
    #: the withdrawal saga this session started, if any (its COMPLETED outcome is a 401)
    withdrawal_saga_id: str | None = None
    #: when the session's TTL was last renewed
    touched_at: float = 0.0

    @property
    def signed_in(self) -> bool:
        return self.member_id is not None and self.access_token is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "ADMIN"

    def to_record(self) -> dict[str, str]:
        """The Redis hash's fields (text; ``None`` fields are left out)."""
        record: dict[str, str] = {}
        for item in fields(self):
            if item.name == "key":
                continue
            value = getattr(self, item.name)
            if value is not None:
                record[item.name] = repr(value) if isinstance(value, float) else str(value)
        return record

    @classmethod
    def from_record(cls, key: str, record: Mapping[str, str]) -> Session:
        """The inverse of ``to_record``; unknown fields are ignored (an older or newer replica)."""
        values: dict[str, Any] = {"key": key, "csrf": record.get("csrf", "")}
        for item in fields(cls):
            if item.name in ("key", "csrf") or item.name not in record:
                continue
            raw = record[item.name]
            values[item.name] = float(raw) if item.type in ("float", float) else raw
        return cls(**values)


def session_key(cookie: str) -> str:
    """The store's key for a cookie value: its SHA-256, hex (a dump of Redis holds no cookie)."""
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).hexdigest()


def cookie_name(scheme: str) -> str:
    """The cookie's name for a request made over ``scheme`` (``http`` or ``https``)."""
    return SECURE_SESSION_COOKIE if scheme == "https" else SESSION_COOKIE


def set_cookie_header(value: str, *, scheme: str, max_age: int) -> str:
    """A ``Set-Cookie`` value; ``max_age=0`` with an empty ``value`` removes the cookie."""
    parts = [f"{cookie_name(scheme)}={value}", f"Max-Age={max_age}", "Path=/", "HttpOnly"]
    parts.append("SameSite=Lax")
    if scheme == "https":
        parts.append("Secure")
    return "; ".join(parts)


def clear_cookie_header(scheme: str) -> str:
    return set_cookie_header("", scheme=scheme, max_age=0)


@dataclass
class SessionStore:
    """Sessions over a ``SessionRecords`` port, the token refresh over the gateway.

    ``clock`` (epoch seconds) and ``sleep`` are replaceable for tests. Every method raises
    ``SignInUnavailable`` when the records cannot be reached, unless it says otherwise."""

    records: SessionRecords
    gateway: GatewayPort
    settings: Settings
    clock: Clock = time.time
    sleep: Sleep = asyncio.sleep
    #: the refresh running in this process for a session key (single-flight)
    _inflight: dict[str, asyncio.Task[Session]] = field(default_factory=dict, repr=False)

    # -- life cycle -----------------------------------------------------------------------

    async def load(self, cookie: str) -> Session | None:
        """The cookie's session, or None (unknown, expired, past its maximum age). Renews the
        session's TTL when its last renewal is a minute old (sliding expiry)."""
        key = session_key(cookie)
        record = await self._call(self.records.load(key))
        if record is None:
            return None
        session = Session.from_record(key, record)
        now = self.clock()
        if session.signed_in and now >= session.created_at + self.settings.SESSION_MAX_AGE_SECONDS:
            await self._best_effort(self.records.delete(key))
            return None
        if now - session.touched_at >= TOUCH_INTERVAL_SECONDS:
            session.touched_at = now
            await self._best_effort(self._touch(session))
        return session

    async def start_guest(self) -> tuple[str, Session]:
        """A new guest session (a CSRF token only, for a form shown to a visitor): ``(cookie,
        session)``."""
        cookie = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(
            session_key(cookie), secrets.token_urlsafe(32), created_at=now, touched_at=now
        )
        await self._call(
            self.records.save(session.key, session.to_record(), self.settings.ANON_SESSION_SECONDS)
        )
        return cookie, session

    async def sign_in(
        self, previous: Session | None, tokens: Mapping[str, Any], member: Mapping[str, Any]
    ) -> tuple[str, Session]:
        """A new session (new cookie, new CSRF token: no fixation) for a member who just
        logged in; ``tokens`` is the login's ``{access_token, refresh_token, expires_in}``,
        ``member`` is ``GET /api/members/me``. The previous session, if any, is deleted."""
        cookie = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(
            key=session_key(cookie),
            csrf=secrets.token_urlsafe(32),
            member_id=str(member["id"]),
            nickname=str(member.get("nickname") or ""),
            role=str(member.get("role") or "MEMBER"),
            access_token=str(tokens["access_token"]),
            refresh_token=str(tokens["refresh_token"]),
            access_expires_at=now + float(tokens.get("expires_in") or 0),
            created_at=now,
            touched_at=now,
        )
        await self._call(self.records.save(session.key, session.to_record(), self._ttl(session)))
        if previous is not None:
            await self._best_effort(self.records.delete(previous.key))
        return cookie, session

    async def end(self, session: Session) -> None:
        """Delete the session (logout, a refused refresh, a completed withdrawal)."""
        await self._call(self.records.delete(session.key))

    async def update(self, session: Session, **changes: str) -> Session:
        """Set some fields (``nickname``, ``withdrawal_saga_id``) of a session that still exists;
        raises ``SessionEnded`` when it does not."""
        updated = replace(session, **changes)  # type: ignore[arg-type]
        if not await self._call(self.records.update(session.key, changes)):
            raise SessionEnded(session, "session gone")
        return updated

    async def flash(self, session: Session, text: str, kind: str = "info") -> None:
        """Keep a one-shot message for the session's next page (best effort)."""
        record = {"flash": json.dumps({"text": text, "kind": kind})}
        await self._best_effort(self.records.update(session.key, record))

    async def take_flash(self, session: Session) -> Flash | None:
        """The session's one-shot message, removed as it is read (None when there is none or
        the store cannot be reached)."""
        try:
            raw = await self.records.take(session.key, "flash")
        except RecordsUnavailable:
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return Flash(str(data["text"]), str(data.get("kind") or "info"))
        except (ValueError, KeyError, TypeError):
            return None

    async def available(self) -> bool:
        """Whether the store answers now (a POST without a session asks, to say why it fails)."""
        try:
            await self.records.ping()
        except RecordsUnavailable:
            return False
        return True

    # -- tokens ---------------------------------------------------------------------------

    def needs_refresh(self, session: Session) -> bool:
        """The access token expires within ``REFRESH_MARGIN_SECONDS`` (or already has)."""
        margin = self.settings.REFRESH_MARGIN_SECONDS
        return session.access_expires_at - self.clock() < margin

    async def fresh(
        self,
        session: Session,
        *,
        rejected_token: str | None = None,
        client_ip: str | None = None,
    ) -> Session:
        """``session`` with an access token to use now: the same one while it is not about to
        expire, else a refreshed one. ``rejected_token`` forces a refresh unless the token was
        already replaced (the API answered 401 to a token believed valid).

        Single-flight per session (module docstring). Raises ``SessionEnded`` when the refresh
        is refused (the session is deleted), ``ApiError`` (503, 504, 429) when it could not be
        had now (the session is kept) and ``SignInUnavailable`` when Redis is down."""
        if not session.signed_in:
            return session
        if rejected_token is None and not self.needs_refresh(session):
            return session
        task = self._inflight.get(session.key)
        if task is None:
            task = asyncio.create_task(self._refresh(session, rejected_token, client_ip))
            self._inflight[session.key] = task
            key = session.key
            task.add_done_callback(lambda done: self._finished(key, done))
        # shielded: a browser that goes away must not cancel the refresh other requests await
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[Session]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: the waiters re-raise it; nobody left is not an error

    def _usable(self, session: Session, rejected_token: str | None) -> bool:
        """The stored session already has a token other than the rejected one (someone else
        refreshed), or needs no refresh at all."""
        if rejected_token is not None:
            return session.access_token != rejected_token and not self.needs_refresh(session)
        return not self.needs_refresh(session)

    async def _refresh(
        self, seen: Session, rejected_token: str | None, client_ip: str | None
    ) -> Session:
        current = await self._reload(seen)
        if self._usable(current, rejected_token):
            return current
        holder = secrets.token_hex(16)
        if not await self._call(self.records.lock(current.key, holder, REFRESH_LOCK_MS)):
            return await self._await_other_refresh(current)
        try:
            # another replica may have written a new pair between the read and the lock
            current = await self._reload(current)
            if self._usable(current, rejected_token):
                return current
            return await self._exchange(current, client_ip)
        finally:
            await self._best_effort(self.records.unlock(current.key, holder))

    async def _await_other_refresh(self, current: Session) -> Session:
        """Another replica holds the lock: wait for the session's refresh token to change."""
        for _ in range(REFRESH_POLLS):
            await self.sleep(REFRESH_POLL_SECONDS)
            latest = await self._reload(current)
            if latest.refresh_token != current.refresh_token:
                return latest
        raise ApiError(503, {"title": "Service Unavailable", "detail": "token refresh pending"})

    async def _exchange(self, current: Session, client_ip: str | None) -> Session:
        """``POST /api/auth/refresh`` and the compare-and-set of the new pair."""
        assert current.refresh_token is not None
        try:
            answer = await self.gateway.request(
                "POST",
                "/api/auth/refresh",
                json={"refresh_token": current.refresh_token},
                client_ip=client_ip,
                timeout=REFRESH_TIMEOUT_SECONDS,
            )
        except ApiError as exc:
            if exc.status in REFRESH_REFUSED:
                log.info("sessions.refresh_refused", status=exc.status, member_id=current.member_id)
                await self._best_effort(self.records.delete(current.key))
                raise SessionEnded(current) from exc
            raise
        body = answer.body if isinstance(answer.body, dict) else {}
        refreshed = replace(
            current,
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            access_expires_at=self.clock() + float(body.get("expires_in") or 0),
        )
        changes = {
            "access_token": refreshed.access_token or "",
            "refresh_token": refreshed.refresh_token or "",
            "access_expires_at": repr(refreshed.access_expires_at),
        }
        if await self._call(self.records.swap_tokens(current.key, current.refresh_token, changes)):
            return refreshed
        # the session changed under us (deleted by a logout, or a newer pair): take what is there
        log.warning("sessions.refresh_lost_race", member_id=current.member_id)
        return await self._reload(current)

    # -- helpers --------------------------------------------------------------------------

    async def _reload(self, session: Session) -> Session:
        record = await self._call(self.records.load(session.key))
        if record is None:
            raise SessionEnded(session, "session gone")
        return Session.from_record(session.key, record)

    def _ttl(self, session: Session) -> int:
        """Seconds the session may live from now: idle or guest TTL, never past its maximum age."""
        if not session.signed_in:
            return self.settings.ANON_SESSION_SECONDS
        left = session.created_at + self.settings.SESSION_MAX_AGE_SECONDS - self.clock()
        return max(1, min(self.settings.SESSION_IDLE_SECONDS, int(left)))

    async def _touch(self, session: Session) -> None:
        await self.records.expire(session.key, self._ttl(session))
        await self.records.update(session.key, {"touched_at": repr(session.touched_at)})

    @staticmethod
    async def _call(call: Awaitable[T]) -> T:
        try:
            return await call
        except RecordsUnavailable as exc:
            raise SignInUnavailable(str(exc)) from exc

    @staticmethod
    async def _best_effort(call: Awaitable[object]) -> None:
        """A write whose failure changes nothing for this request (counted by the records)."""
        with contextlib.suppress(RecordsUnavailable):
            await call
