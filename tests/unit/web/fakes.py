"""Hand-written fakes of web's own ports for unit tests: the gateway (``GatewayPort``), the session records (``SessionRecords``) and a clock."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.testclient import TestClient

from web.adapters.gateway_client import ApiError, ApiResponse, GatewayUnreachable
from web.adapters.session_records import RecordsUnavailable
from web.bootstrap import build_api
from web.config import Settings
from web.sessions import SESSION_COOKIE, SessionStore

SETTINGS = Settings(REDIS_URL="redis://127.0.0.1:1/0", REFRESH_MARGIN_SECONDS=30)


class Clock:
    """A hand-held clock (epoch seconds): moves only when told."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Call:
    method: str
    path: str
    token: str | None
    json: Any
    params: dict[str, Any] | None
    idempotency_key: str | None


Handler = Callable[[Call], Awaitable[ApiResponse] | ApiResponse]


def ok(body: Any = None, status: int = 200) -> ApiResponse:
    return ApiResponse(status, body, httpx.Headers())


def problem(status: int, detail: str = "", **extra: Any) -> ApiError:
    return ApiError(status, {"status": status, "detail": detail, **extra})


class FakeGateway:
    """Answers ``request`` from ``routes`` (``"METHOD /path"`` -> handler or response; a
    handler may raise ``ApiError``); records every call. An unknown route is a 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler | ApiResponse | ApiError] = {}
        self.calls: list[Call] = []
        self.down = False

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def on(self, route: str, answer: Handler | ApiResponse | ApiError) -> None:
        self.routes[route] = answer

    def called(self, route: str) -> list[Call]:
        method, _, path = route.partition(" ")
        return [c for c in self.calls if c.method == method and c.path == path]

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        client_ip: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> ApiResponse:
        call = Call(method, path, token, json, params, idempotency_key)
        self.calls.append(call)
        if self.down:
            raise GatewayUnreachable("ConnectError")
        answer = self.routes.get(f"{method} {path}")
        if answer is None:
            raise problem(404, "no such endpoint")
        if isinstance(answer, ApiError):
            raise answer
        if isinstance(answer, ApiResponse):
            return answer
        result = answer(call)
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            return await result
        return result


@dataclass
class MemoryRecords:
    """``SessionRecords`` in a dict, with the TTLs it was given (``ttl``) and a switch that
    makes every call fail as an unreachable Redis would (``down``)."""

    clock: Clock
    data: dict[str, dict[str, str]] = field(default_factory=dict)
    ttl: dict[str, float] = field(default_factory=dict)
    locks: dict[str, tuple[str, float]] = field(default_factory=dict)
    down: bool = False
    lock_attempts: int = 0

    def _check(self) -> None:
        if self.down:
            raise RecordsUnavailable("down")

    def _alive(self, h: str) -> dict[str, str] | None:
        expires = self.ttl.get(h)
        if expires is not None and expires <= self.clock():
            self.data.pop(h, None)
            self.ttl.pop(h, None)
        return self.data.get(h)

    async def load(self, h: str) -> dict[str, str] | None:
        self._check()
        found = self._alive(h)
        return dict(found) if found else None

    async def save(self, h: str, fields: Mapping[str, str], ttl_seconds: int) -> None:
        self._check()
        self.data[h] = dict(fields)
        self.ttl[h] = self.clock() + ttl_seconds

    async def update(self, h: str, fields: Mapping[str, str]) -> bool:
        self._check()
        found = self._alive(h)
        if found is None:
            return False
        found.update(fields)
        return True

    async def expire(self, h: str, ttl_seconds: int) -> None:
        self._check()
        if self._alive(h) is not None:
            self.ttl[h] = self.clock() + ttl_seconds

    async def delete(self, h: str) -> None:
        self._check()
        self.data.pop(h, None)
        self.ttl.pop(h, None)

    async def swap_tokens(self, h: str, expected_refresh: str, fields: Mapping[str, str]) -> bool:
        self._check()
        found = self._alive(h)
        if found is None or found.get("refresh_token") != expected_refresh:
            return False
        found.update(fields)
        return True

    async def take(self, h: str, field: str) -> str | None:
        self._check()
        found = self._alive(h)
        return None if found is None else found.pop(field, None)

    async def lock(self, h: str, holder: str, ttl_ms: int) -> bool:
        self._check()
        self.lock_attempts += 1
        held = self.locks.get(h)
        if held is not None and held[1] > self.clock():
            return False
        self.locks[h] = (holder, self.clock() + ttl_ms / 1000)
        return True

    async def unlock(self, h: str, holder: str) -> None:
        self._check()
        if self.locks.get(h, ("", 0.0))[0] == holder:
            del self.locks[h]

    async def ping(self) -> None:
        self._check()


def member_body(nickname: str = "alice", role: str = "MEMBER") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "email": f"{nickname}@example.com",
        "nickname": nickname,
        "role": role,
        "status": "ACTIVE",
        "points": 100,
        "created_at": "2026-11-30T00:00:00Z",
    }


class TokenMint:
    """Issues numbered token pairs like member does: each refresh token is single-use, and
    presenting a spent one revokes the family (every later refresh is refused), as member does (docs/services/member.md)."""

    def __init__(self, expires_in: int = 900) -> None:
        self.expires_in = expires_in
        self.issued = 0
        self.valid_refresh: set[str] = set()
        self.valid_access: set[str] = set()
        self.revoked = False
        self.refreshes = 0

    def pair(self) -> dict[str, Any]:
        self.issued += 1
        access, refresh = f"access-{self.issued}", f"refresh-{self.issued}"
        self.valid_access.add(access)
        self.valid_refresh.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }

    def refresh(self, token: str) -> dict[str, Any]:
        self.refreshes += 1
        if self.revoked or token not in self.valid_refresh:
            self.revoked = True  # reuse detection: the whole family is revoked
            raise problem(401, "the refresh token was already used; session revoked")
        self.valid_refresh.discard(token)
        return self.pair()


class World:
    """The app wired to fakes: gateway, session records, clock, token issuer."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.records = MemoryRecords(self.clock)
        self.gateway = FakeGateway()
        self.mint = TokenMint()
        self.me = member_body("alice")
        self.app = build_api(SETTINGS, self.gateway, records=self.records, clock=self.clock)
        self.gateway.on("POST /api/auth/login", lambda call: ok(self.mint.pair()))
        self.gateway.on("POST /api/auth/refresh", self._refresh)
        self.gateway.on("POST /api/auth/logout", ok(None, 204))
        self.gateway.on("GET /api/members/me", self._me)
        self.gateway.on("POST /api/probe-write", self._me)

    def _refresh(self, call: Call) -> Any:
        return ok(self.mint.refresh(call.json["refresh_token"]))

    def _me(self, call: Call) -> Any:
        if call.token not in self.mint.valid_access:
            raise problem(401, "the token is not valid")
        return ok(self.me)

    @property
    def store(self) -> SessionStore:
        found: SessionStore = self.app.state.sessions
        return found


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def csrf_of_form(html: str, action: str, *, containing: str = "") -> str:
    """The CSRF token of the form that posts to ``action`` (the first whose markup also
    contains ``containing``): what a browser submits with that form, not the token of another
    form on the page (the header's log-out button carries one too)."""
    for form in re.findall(r"<form\b[^>]*>.*?</form>", html, flags=re.S):
        if f'action="{action}"' in form and containing in form:
            return csrf_of(form)
    raise AssertionError(f"no form posting to {action} on the page")


def log_in(client: TestClient) -> str:
    """Log in through the pages; returns the signed-in session's cookie."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"csrf_token": token, "email": "alice@example.com", "password": "pw-123456"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return str(client.cookies[SESSION_COOKIE])
