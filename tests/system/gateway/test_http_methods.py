"""HTTP method semantics through a real gateway process (RFC 9110 §9): HEAD wherever GET is, with GET's
status and header fields and no body, over every path of the route table and the gateway's own
endpoints; OPTIONS, 405 and 501 as the server answers them on the wire; a CORS preflight still
answered by CORS. The kind of fault: a method every resource must support answered as 405."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from chassis.methods import allow_header
from gateway.routes import ROUTES, TOKEN
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.system

PARAMS = {"service": "qna", "command": "retire-author"}
#: Every routed GET, and pages of the web front end (``routes.FRONT_END``).
GET_TEMPLATES = sorted({r.path for r in ROUTES if r.method == "GET"} | {"/", "/boards/1/posts"})
PROTECTED_GETS = sorted({r.path for r in ROUTES if r.method == "GET" and r.access is TOKEN})
#: Headers that differ between any two answers.
PER_ANSWER = {"date"}


def concrete(template: str) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: PARAMS.get(m.group(1), str(uuid.uuid4())), template)


def comparable(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_ANSWER}


async def get_and_head(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    # One request id for both: the upstream sees the same request, so its answer has the same size.
    fixed = {**headers, "X-Request-ID": f"head-{uuid.uuid4().hex}"}
    return await client.get(path, headers=fixed), await client.head(path, headers=fixed)


@pytest.mark.parametrize("template", GET_TEMPLATES, ids=str)
async def test_head_is_get_without_the_body_on_every_routed_get(
    client: httpx.AsyncClient, issuer: TokenIssuer, template: str
) -> None:
    path = concrete(template)
    got, head = await get_and_head(client, path, issuer.headers(uuid.UUID(int=1)))
    assert got.status_code == 200, got.text
    assert head.status_code == got.status_code
    assert comparable(head) == comparable(got)
    assert int(head.headers["content-length"]) == len(got.content) > 0
    assert head.content == b""


@pytest.mark.parametrize("template", PROTECTED_GETS, ids=str)
async def test_head_without_a_token_is_the_same_401_as_get(
    client: httpx.AsyncClient, template: str
) -> None:
    got, head = await get_and_head(client, concrete(template), {})
    assert got.status_code == head.status_code == 401
    assert comparable(head) == comparable(got)
    assert head.headers["content-type"] == "application/problem+json"
    assert head.content == b""


@pytest.mark.parametrize("path", ["/healthz", "/docs", "/openapi/board.json"])
async def test_head_on_the_gateways_own_endpoints(client: httpx.AsyncClient, path: str) -> None:
    got, head = await get_and_head(client, path, {})
    assert got.status_code == head.status_code == 200
    assert comparable(head) == comparable(got)
    assert head.content == b""


@pytest.mark.parametrize("path", ["/readyz", "/metrics", "/api/me/dashboard"])
async def test_head_on_the_gateways_changing_endpoints(
    client: httpx.AsyncClient, issuer: TokenIssuer, path: str
) -> None:
    """Their bodies change from one answer to the next: status and header names must agree."""
    got, head = await get_and_head(client, path, issuer.headers())
    assert got.status_code == head.status_code == 200
    assert set(comparable(head)) == set(comparable(got))
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""


async def test_options_on_the_wire(client: httpx.AsyncClient) -> None:
    response = await client.options(f"/api/posts/{uuid.uuid4()}")
    assert response.status_code == 204
    assert response.headers["allow"] == allow_header({"GET", "PATCH", "DELETE"})
    assert response.content == b""


async def test_a_cors_preflight_is_still_answered_by_cors(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/posts",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "DELETE" in response.headers["access-control-allow-methods"]
    assert "allow" not in response.headers


@pytest.mark.parametrize("path", ["/api/boards", "/boards"])
@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PUT"])
async def test_a_method_the_path_lacks_is_405_with_allow_on_the_wire(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """On a page path the refusal is the gateway's HTML page (test_error_pages.py)."""
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    expected = (
        "application/problem+json" if path.startswith("/api/") else "text/html; charset=utf-8"
    )
    assert response.headers["content-type"] == expected


@pytest.mark.parametrize("method", ["PROPFIND", "PURGE", "QUERY"])
async def test_a_method_nobody_implements_is_501_on_the_wire(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/api/boards")
    assert response.status_code == 501
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_method_the_http_parser_does_not_know_is_refused_before_the_app(
    client: httpx.AsyncClient,
) -> None:
    """llhttp (uvicorn's httptools parser) only parses the methods in its table: ``FOO`` is a
    malformed request line to it (400) and never reaches the gateway's 501 rule."""
    try:
        response = await client.request("FOO", "/api/boards")
    except httpx.RemoteProtocolError:
        return
    assert response.status_code in (400, 501)
