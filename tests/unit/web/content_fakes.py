"""Test doubles for the board and Q&A screens: a fake of web's own gateway port that answers from a table and records every call, and a signed-in visitor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from web.adapters.gateway_client import ApiError, ApiResponse, GatewayUnreachable
from web.bootstrap import build_api
from web.config import Settings
from web.entrypoints.deps import LoginRequired, current_session, require_member
from web.sessions import Session

#: Nothing listens here: the session store's Redis is down, which guests never notice.
NO_REDIS = "redis://127.0.0.1:1/0"

MEMBER_ID = "11111111-1111-4111-8111-111111111111"
OTHER_ID = "22222222-2222-4222-8222-222222222222"
ADMIN_ID = "33333333-3333-4333-8333-333333333333"
CSRF = "csrf-token-of-this-session"


@dataclass
class Call:
    method: str
    path: str
    token: str | None
    json: Any
    params: dict[str, Any]
    idempotency_key: str | None


Answer = ApiResponse | ApiError | Callable[["Call"], ApiResponse]


@dataclass
class FakeGateway:
    """Stands in for ``GatewayClient`` (the same ``open``/``aclose``/``request``): each
    ``(method, path)`` answers what ``on`` set, a 2xx body or an ``ApiError`` raised; an
    unset one is a 404 problem, as the gateway answers an unknown id."""

    routes: dict[tuple[str, str], Answer] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def on(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.routes[(method, path)] = ApiResponse(status, body, httpx.Headers(headers or {}))

    def refuse(self, method: str, path: str, status: int, **problem: Any) -> None:
        document = {"type": "about:blank", "title": "refused", "status": status, **problem}
        self.routes[(method, path)] = ApiError(status, document)

    def down(self, method: str, path: str) -> None:
        """The gateway answers 503 (the upstream's circuit is open)."""
        self.refuse(method, path, 503, detail="upstream board is unavailable")

    def unreachable(self, method: str, path: str) -> None:
        self.routes[(method, path)] = GatewayUnreachable("ConnectError")

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if (c.method, c.path) == (method, path)]

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
        query = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        call = Call(method, path, token, json, query, idempotency_key)
        self.calls.append(call)
        answer = self.routes.get((method, path))
        if answer is None:
            raise ApiError(404, {"status": 404, "detail": "not found"})
        if isinstance(answer, ApiError):
            raise answer
        if isinstance(answer, ApiResponse):
            return answer
        return answer(call)


def member(member_id: str = MEMBER_ID, *, role: str = "MEMBER", nickname: str = "alice") -> Session:
    return Session(
        key="k" * 64,
        csrf=CSRF,
        member_id=member_id,
        nickname=nickname,
        role=role,
        access_token=f"token-of-{nickname}",
        refresh_token="refresh",
        access_expires_at=4_102_444_800.0,
    )


def sign_in(app: FastAPI, session: Session | None) -> None:
    """Make every request of ``app`` come from ``session`` (``None``: a guest)."""

    async def fixed(request: Request) -> Session | None:
        request.state.session = session
        return session

    async def signed_in(request: Request) -> Session:
        request.state.session = session
        if session is None or not session.signed_in:
            raise LoginRequired(request.url.path)
        return session

    app.dependency_overrides[current_session] = fixed
    app.dependency_overrides[require_member] = signed_in


@contextmanager
def web_client(gateway: FakeGateway, session: Session | None = None) -> Iterator[TestClient]:
    app = build_api(Settings(REDIS_URL=NO_REDIS), gateway=gateway)  # type: ignore[arg-type]
    sign_in(app, session)
    with TestClient(app, headers={"Accept-Language": "en"}) as client:
        yield client
