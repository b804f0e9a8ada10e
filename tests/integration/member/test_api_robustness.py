"""Bad input never gets a 5xx, and every error is application/problem+json."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.member.helpers import PASSWORD, bearer, log_in, sign_up, unique_email

pytestmark = pytest.mark.integration

HUGE = "x" * 200_000
BAD_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/members", b"{not json"),
    ("POST", "/api/members", b""),
    ("POST", "/api/members", b"[]"),
    ("POST", "/api/members", b"null"),
    ("POST", "/api/members", {"email": 123, "password": PASSWORD, "nickname": "abc"}),
    ("POST", "/api/members", {"email": "a@example.com", "password": 12345678, "nickname": "ab"}),
    ("POST", "/api/members", {"email": "a@example.com", "password": PASSWORD, "nickname": ["x"]}),
    ("POST", "/api/members", {"email": "a@example.com", "password": HUGE, "nickname": "abc"}),
    ("POST", "/api/members", {"email": "a@example.com", "password": "한" * 129, "nickname": "abc"}),
    ("POST", "/api/members", {"email": "a@example.com", "password": "short", "nickname": "abc"}),
    (
        "POST",
        "/api/members",
        {"email": HUGE + "@example.com", "password": PASSWORD, "nickname": "abc"},
    ),
    ("POST", "/api/members", {"email": "not-an-email", "password": PASSWORD, "nickname": "abc"}),
    ("POST", "/api/members", {"email": "a@example.com", "password": PASSWORD, "nickname": "a"}),
    ("POST", "/api/members", {"email": "a@example.com", "password": PASSWORD, "nickname": "  "}),
    ("POST", "/api/members", {"email": "a@example.com", "password": PASSWORD, "nickname": HUGE}),
    (
        "POST",
        "/api/members",
        {"email": "a@example.com", "password": PASSWORD, "nickname": "a\x00b"},
    ),
    ("POST", "/api/members", {"email": "a@example.com", "password": PASSWORD}),
    (
        "POST",
        "/api/members",
        {"email": "a@example.com", "password": PASSWORD, "nickname": "abc", "role": "ADMIN"},
    ),
    ("POST", "/api/auth/login", b"{"),
    ("POST", "/api/auth/login", {"email": "a@example.com", "password": HUGE}),
    ("POST", "/api/auth/login", {"email": None, "password": PASSWORD}),
    ("POST", "/api/auth/login", {"email": "a@example.com"}),
    ("POST", "/api/auth/refresh", {"refresh_token": HUGE}),
    ("POST", "/api/auth/refresh", {"refresh_token": ""}),
    ("POST", "/api/auth/refresh", {"refresh_token": 42}),
    ("POST", "/api/auth/refresh", {"refresh_token": "\x00\xff garbage"}),
    ("POST", "/api/auth/refresh", b"\xff\xfe"),
    ("POST", "/api/auth/logout", {"refresh_token": HUGE}),
    ("POST", "/api/auth/logout", {}),
    ("GET", "/api/members/not-a-uuid", None),
    ("GET", "/api/members/00000000-0000-0000-0000-00000000000g", None),
    ("GET", "/api/members/me", None),
    ("PATCH", "/api/members/me", {"nickname": "new"}),
    ("GET", "/api/nowhere", None),
    ("DELETE", "/api/auth/login", None),
]


def _send(
    method: str, path: str, body: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": dict(headers or {})}
    if isinstance(body, bytes):
        kwargs["content"] = body
        kwargs["headers"]["content-type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    return {"method": method, "url": path, **kwargs}


async def test_malformed_requests_get_problems_not_5xx(client: httpx.AsyncClient) -> None:
    for method, path, body in BAD_REQUESTS:
        response = await client.request(**_send(method, path, body))
        label = f"{method} {path} {str(body)[:60]}"
        assert 400 <= response.status_code < 500, label
        assert response.headers["content-type"] == "application/problem+json", label
        problem = response.json()
        assert problem["status"] == response.status_code, label
        assert "title" in problem, label


async def test_validation_errors_list_what_is_wrong(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/members", json={"email": "a@example.com", "password": "x" * 129, "nickname": "ab"}
    )
    assert response.status_code == 422
    assert any(e["loc"][-1] == "password" for e in response.json()["errors"])


BAD_AUTHORIZATION = [
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Bearer a b c",
    "Token abc",
    "Bearer " + "A" * 10_000,
    "Bearer ..",
    "Bearer eyJhbGciOiJub25lIn0.e30.",
    "Bearer eyJhbGciOiJFZERTQSIsImtpZCI6WzFdfQ.e30.c2ln",
]


async def test_bad_authorization_headers_are_401(client: httpx.AsyncClient) -> None:
    for authorization in BAD_AUTHORIZATION:
        response = await client.get("/api/members/me", headers={"Authorization": authorization})
        assert response.status_code == 401, authorization
        assert response.headers["content-type"] == "application/problem+json", authorization


async def test_authenticated_bad_bodies_are_4xx(client: httpx.AsyncClient) -> None:
    member = await sign_up(client)
    auth = bearer((await log_in(client, member["email"]))["access_token"])
    cases: list[Any] = [
        b"{bad",
        {"nickname": 5},
        {"nickname": "x"},
        {"password": HUGE, "current_password": PASSWORD},
        {"password": "new-password", "current_password": HUGE},
        {"unknown": True},
        [],
    ]
    for body in cases:
        response = await client.request(**_send("PATCH", "/api/members/me", body, auth))
        assert 400 <= response.status_code < 500, body
        assert response.headers["content-type"] == "application/problem+json", body
    me = await client.get("/api/members/me", headers=auth)
    assert me.json()["nickname"] == member["nickname"]  # nothing stored was changed


async def test_login_with_malformed_email_is_just_a_failed_login(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/login", json={"email": "not an email", "password": PASSWORD}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    unknown = await client.post(
        "/api/auth/login", json={"email": unique_email(), "password": PASSWORD}
    )
    assert unknown.status_code == 401
