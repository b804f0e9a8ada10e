"""Test doubles for the board and Q&A screens: web's own gateway port faked (tests/unit/web/fakes.py) with a table of answers, and a browser signed in through the real log-in page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.unit.web.fakes import Call, Clock, FakeGateway, MemoryRecords, ok, problem
from web.adapters.gateway_client import ApiResponse, GatewayUnreachable
from web.bootstrap import build_api
from web.config import Settings

SETTINGS = Settings(REDIS_URL="redis://127.0.0.1:1/0")

MEMBER_ID = "11111111-1111-4111-8111-111111111111"
OTHER_ID = "22222222-2222-4222-8222-222222222222"
ADMIN_ID = "33333333-3333-4333-8333-333333333333"


@dataclass(frozen=True)
class Account:
    """Who signs in: member's ``GET /api/members/me`` answers this."""

    id: str = MEMBER_ID
    nickname: str = "alice"
    role: str = "MEMBER"


def member(member_id: str = MEMBER_ID, *, role: str = "MEMBER", nickname: str = "alice") -> Account:
    return Account(member_id, nickname, role)


class ContentGateway(FakeGateway):
    """The shared fake, with the shorthands these pages' tests use (one answer per
    ``method path``; the params a call carried, without the ``None`` ones web leaves out)."""

    def answer(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.on(f"{method} {path}", ApiResponse(status, body, httpx.Headers(headers or {})))

    def refuse(self, method: str, path: str, status: int, **document: Any) -> None:
        detail = str(document.pop("detail", ""))
        self.on(f"{method} {path}", problem(status, detail, **document))

    def outage(self, method: str, path: str) -> None:
        """The gateway answers 503 (the upstream is down or its circuit is open)."""
        self.refuse(method, path, 503, detail="upstream unavailable")

    def unreachable(self, method: str, path: str) -> None:
        """No answer at all (connection refused, timeout)."""
        self.on(f"{method} {path}", GatewayUnreachable("ConnectError"))

    def calls_to(self, method: str, path: str) -> list[Call]:
        found = self.called(f"{method} {path}")
        for call in found:
            call.params = {k: v for k, v in (call.params or {}).items() if v not in (None, "")}
        return found


@dataclass
class Browser:
    """A test client and its session's CSRF token, which ``post`` puts in every form as the
    page's hidden field would (the CSRF check itself is test_sessions.py's subject)."""

    client: TestClient
    csrf: str = ""

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.client.get(url, **kwargs)
        return response

    def post(self, url: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        form = {"csrf_token": self.csrf, **(data or {})}
        response: httpx.Response = self.client.post(url, data=form, **kwargs)
        return response


def _sign_in(gateway: ContentGateway, client: TestClient, account: Account) -> str:
    gateway.answer(
        "POST",
        "/api/auth/login",
        {
            "access_token": f"token-of-{account.nickname}",
            "refresh_token": f"refresh-of-{account.nickname}",
            "token_type": "bearer",
            "expires_in": 900,
        },
    )
    gateway.on(
        "GET /api/members/me",
        lambda call: ok(
            {
                "id": account.id,
                "email": f"{account.nickname}@example.com",
                "nickname": account.nickname,
                "role": account.role,
                "status": "ACTIVE",
                "points": 100,
                "created_at": "2026-11-30T00:00:00Z",
            }
        ),
    )
    login = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token is not None
    form = {"csrf_token": token.group(1), "email": "x@example.com", "password": "pw-123456"}
    signed_in = client.post("/login", data=form, follow_redirects=False)
    assert signed_in.status_code == 303, signed_in.text
    home = client.get("/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text)  # the log-out form
    assert csrf is not None
    return csrf.group(1)


@contextmanager
def web_client(gateway: ContentGateway, account: Account | None = None) -> Iterator[Browser]:
    """The app over ``gateway`` with sessions in memory; signed in as ``account`` (``None``:
    a guest). English unless a request asks otherwise."""
    clock = Clock()
    clock.now = 1_800_000_000.0
    app = build_api(SETTINGS, gateway, records=MemoryRecords(clock))
    with TestClient(app, base_url="http://web.test", headers={"Accept-Language": "en"}) as client:
        browser = Browser(client)
        if account is not None:
            browser.csrf = _sign_in(gateway, client, account)
        yield browser


def main_of(html: str) -> str:
    """The page's ``<main>`` element (its content, without the header's links and forms)."""
    found = re.search(r"<main.*</main>", html, re.S)
    assert found is not None
    return found.group(0)


def hidden_field(html: str, name: str) -> str:
    """The value of the first hidden (or any) field ``name`` on the page."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, name
    return found.group(1)
