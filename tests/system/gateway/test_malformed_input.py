"""Malformed requests and headers: the gateway answers them itself, and never with a 5xx; odd page
paths reach the web front end as the gateway decoded them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
import pytest

from tests.support.http import raw_request
from tests.support.processes import ServiceProcess
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.system


def assert_not_5xx(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/members", {"content": b"{not json"}),
        (
            "POST",
            "/api/members",
            {"content": b"\xff\xfe\x00", "headers": {"Content-Type": "application/json"}},
        ),
        ("GET", "/api/posts/not-a-uuid", {}),
        ("GET", "/api/posts/%00", {}),
        ("GET", "/api/posts/%ZZ", {}),
        ("GET", "/api/posts/%2e%2e", {}),
        ("GET", "/api/posts/..%2F..%2Finternal%2Fx", {}),
        ("GET", "/api/boards/" + "x" * 5000 + "/posts", {}),
        ("GET", "/api/questions?page=-1&size=100000&status=%ff&q=" + "%zz" * 50, {}),
        ("GET", "/api/questions?" + "a=1&" * 3000, {}),
        ("GET", "/api/boards", {"headers": {"X-Request-ID": "bad id with spaces" * 20}}),
        ("GET", "/api/boards", {"headers": {"X-Big": "a" * 20000}}),
        ("POST", "/api/auth/login", {"content": b"x" * (2 * 1024 * 1024)}),
        ("BREW", "/api/boards", {}),
        ("PROPFIND", "/api/boards", {}),
        ("TRACE", "/api/members/me", {}),
        ("DELETE", "/docs", {}),
        ("GET", "/%00", {}),
        ("GET", "/..%2F..%2Finternal%2Fx", {}),
        ("GET", "/" + "x" * 5000, {}),
        ("GET", "/?q=%ff%00&page=-1", {}),
        ("POST", "/login", {"content": b"\xff\xfe\x00"}),
        ("POST", "/login", {"content": b"x" * (2 * 1024 * 1024)}),
        ("PUT", "/login", {}),
        ("PROPFIND", "/", {}),
        ("TRACE", "/", {}),
    ],
)
async def test_malformed_requests_never_get_a_5xx(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, object]
) -> None:
    try:
        response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.RemoteProtocolError:
        return  # the HTTP server itself refused to parse it: no 5xx either
    if method in ("BREW", "PROPFIND"):
        # A method nobody implements is 501 (RFC 9110 §9.1), the one 5xx that names the client's
        # request; or 400 when the HTTP parser does not know the method (test_http_methods.py).
        assert response.status_code in (400, 501), response.text
        return
    assert_not_5xx(response)


@pytest.mark.parametrize(
    "target",
    [
        "/%ZZ",
        "/a%2Fb",
        "/%EA%B2%8C%EC%8B%9C%ED%8C%90",
        "/a%3Fb%23c%25",
        "/%5C%5Cevil.example",
        "/;jsessionid=1",
        "/boards/%2e%2e%2e",
        "/" + "x" * 5000,
    ],
)
async def test_odd_page_paths_reach_web_as_the_gateway_decoded_them(
    gateway: ServiceProcess, target: str
) -> None:
    """Kind: a path that means one thing at the edge and another behind it. Whatever a page path
    holds (an encoded ``/``, ``?``, ``#`` or ``\\``), web gets the path the
    gateway checked, re-encoded so that web decodes exactly that; and no 5xx. (A NUL or invalid
    UTF-8 is refused with 422 by the edge's input guard before any routing, as on the API.)"""
    assert gateway.port is not None
    status, headers, body = await raw_request(gateway.port, "GET", target)
    assert status == 200, body[:300]
    assert headers["x-echo-upstream"] == "web"
    # both uvicorns decode the path they get with urllib's unquote
    assert unquote(json.loads(body)["raw_path"]) == unquote(target)


async def test_oversized_requests_get_their_own_status(client: httpx.AsyncClient) -> None:
    body = await client.post("/api/auth/login", content=b"x" * (1024 * 1024 + 1))
    assert body.status_code == 413
    headers = await client.get("/api/boards", headers={"X-Big": "a" * 17000})
    assert headers.status_code == 431
    query = await client.get("/api/questions?q=" + "a" * 9000)
    assert query.status_code == 414
    for response in (body, headers, query):
        assert response.headers["content-type"] == "application/problem+json"
    # on a page path the same refusal is the gateway's HTML page (test_error_pages.py)
    form = await client.post("/login", content=b"x" * (1024 * 1024 + 1))
    assert form.status_code == 413
    assert form.headers["content-type"] == "text/html; charset=utf-8"


async def test_a_body_without_a_declared_length_is_bounded_too(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 65536  # 1.25 MiB in total, sent chunked

    response = await client.post("/api/auth/login", content=chunks())
    assert response.status_code == 413


async def test_malformed_tokens_on_every_kind_of_route(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    token = issuer.token()
    odd = [
        token + ".extra",
        token.replace(".", ".."),
        "." * 3,
        "e30.e30.",  # {} . {} . no signature
        "eyJhbGciOiJub25lIn0.e30.",  # alg none, no claims
        "eyJhbGciOiJFZERTQSIsImtpZCI6W119.e30.AAAA",  # kid is a list
        "x" * 8000,
    ]
    for value in odd:
        for path in ("/api/members/me", "/api/boards", "/api/me/dashboard"):
            response = await client.get(path, headers={"Authorization": f"Bearer {value}"})
            assert_not_5xx(response)


async def test_raw_garbage_on_the_socket_gets_no_5xx(gateway: ServiceProcess) -> None:
    assert gateway.port is not None
    for raw in (
        b"GET /api/boards HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /api/boards HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /api/boards HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\tb\x01\r\n\r\n",
        b"GET /api/members/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
        b"GET /api/boards HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),  # a TLS hello
        b"GET /api/boards HTTP/9.9\r\n\r\n",
        b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            writer.write(raw)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 10)
        except (ConnectionError, TimeoutError):
            status_line = b""
        finally:
            writer.close()
        if status_line:
            status = int(status_line.split()[1])
            assert status < 500, (raw[:40], status_line)


async def test_the_gateway_still_works_afterwards(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/posts/{uuid.uuid4()}")
    assert response.status_code == 200
