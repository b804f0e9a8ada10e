"""Routing through a real gateway process: every route of the table reaches the right upstream, with the
headers the services rely on; every page path reaches the web front end, with the browser's cookies
and web's answer unchanged; everything else is a problem document from the gateway."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from gateway.routes import ROUTES, TOKEN, Route
from tests.support.http import raw_request
from tests.support.infra import wait_for
from tests.support.processes import ServiceProcess
from tests.support.tokens import TokenIssuer

from .conftest import metric

pytestmark = pytest.mark.system

PARAMS = {"service": "qna", "command": "retire-author"}


def concrete(route: Route) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: PARAMS.get(m.group(1), str(uuid.uuid4())), route.path)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
async def test_every_route_reaches_its_upstream(
    client: httpx.AsyncClient, issuer: TokenIssuer, route: Route
) -> None:
    path = concrete(route)
    body = b'{"title": "t"}' if route.method in ("POST", "PUT", "PATCH") else None
    response = await client.request(
        route.method,
        path,
        params={"page": "2", "size": "5"},
        headers={**issuer.headers(), "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["upstream"] == route.upstream
    assert (seen["method"], seen["path"], seen["query"]) == (route.method, path, "page=2&size=5")
    assert seen["body"] == (body or b"").decode()


@pytest.mark.parametrize("route", [r for r in ROUTES if r.access is TOKEN], ids=lambda r: r.name)
async def test_protected_routes_need_a_token_at_the_edge(
    client: httpx.AsyncClient, route: Route
) -> None:
    response = await client.request(route.method, concrete(route))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_the_headers_services_rely_on_are_forwarded(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    token = issuer.token()
    trace_id = uuid.uuid4().hex
    response = await client.post(
        "/api/questions",
        content=b'{"title": "q"}',
        headers={
            "Authorization": f"Bearer {token}",
            "X-Request-ID": "req-forwarded-1",
            "Idempotency-Key": "idem-1",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "traceparent": f"00-{trace_id}-b7ad6b7169203331-01",
            "X-Forwarded-For": "198.51.100.20",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "must not pass",
            "Accept-Language": "ko-KR",
        },
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-forwarded-1"
    assert response.headers["x-echo-upstream"] == "qna"  # upstream headers come back
    got = response.json()["headers"]
    assert got["authorization"] == f"Bearer {token}"  # untouched: the service verifies again
    assert got["x-request-id"] == "req-forwarded-1"
    assert got["idempotency-key"] == "idem-1"
    assert got["content-type"] == "application/json"
    assert got["accept"] == "application/json"
    assert got["accept-language"] == "ko-KR"
    # The gateway trusts no proxy by default: the client's own chain is replaced by its address.
    assert got["x-forwarded-for"] == "127.0.0.1"
    assert got["x-forwarded-proto"] == "http"
    assert got["x-forwarded-host"] == client.base_url.netloc.decode()
    assert "x-hop" not in got
    # The gateway's own span sits between the caller's and the service's: same trace.
    assert got["traceparent"].split("-")[1] == trace_id


async def test_a_request_id_is_minted_when_missing_and_passed_upstream(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/boards")
    minted = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", minted)
    assert response.json()["headers"]["x-request-id"] == minted


async def test_the_access_log_carries_the_request_id(
    client: httpx.AsyncClient, gateway: ServiceProcess
) -> None:
    request_id = f"access-log-{uuid.uuid4().hex[:8]}"
    await client.get("/api/boards", headers={"X-Request-ID": request_id})

    async def logged() -> bool:
        # The line is written once the response has left, so it may trail the answer a little.
        lines = [line for line in gateway.output().splitlines() if request_id in line]
        return any('"http.request"' in line and '"/api/boards"' in line for line in lines)

    await wait_for(logged, timeout=10, message="the access log line")


#: Page paths: ``/`` and everything outside the reserved prefixes.
PAGES = ["/", "/login", "/boards", f"/boards/{uuid.uuid4()}/posts", "/static/app.css", "/apis"]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_every_page_path_reaches_the_web_front_end(
    client: httpx.AsyncClient, issuer: TokenIssuer, method: str, path: str
) -> None:
    body = b"title=t&csrf_token=x" if method == "POST" else None
    response = await client.request(
        method,
        path,
        params={"page": "2"},
        headers={
            # a browser's form post; a bearer token sent along is neither checked nor forwarded
            **issuer.headers(),
            "Cookie": "msa_session=s1; lang=ko",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        content=body,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-echo-upstream"] == "web"
    seen = response.json()
    assert (seen["method"], seen["path"], seen["query"]) == (method, path, "page=2")
    assert seen["body"] == (body or b"").decode()
    assert seen["headers"]["cookie"] == "msa_session=s1; lang=ko"
    assert "authorization" not in seen["headers"]
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    # web gets its own address as Host; the browser's is here, for a form post's Origin check
    assert seen["headers"]["x-forwarded-host"] == client.base_url.netloc.decode()


async def test_a_revoked_or_garbage_token_does_not_lock_a_page(client: httpx.AsyncClient) -> None:
    for value in ("Bearer x.y.z", "Basic dXNlcjpwdw==", "Bearer " + "e30." * 3):
        response = await client.get("/", headers={"Authorization": value})
        assert response.status_code == 200, response.text
        assert response.headers["x-echo-upstream"] == "web"


async def test_several_set_cookie_headers_and_a_303_come_back_as_web_sent_them(
    client: httpx.AsyncClient,
) -> None:
    """Kind: a proxy that folds repeated headers or follows a redirect itself (see
    tests/unit/gateway/test_front_end.py), checked here on the wire through uvicorn and httpx."""
    cookies = [
        "msa_session=abc; HttpOnly; Path=/; SameSite=Lax",
        "lang=en; Path=/; Expires=Wed, 09 Jun 2027 10:18:14 GMT",
    ]
    response = await client.post(
        "/login",
        content=b"email=a&password=b",
        headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Echo-Status", "303"),
            ("X-Echo-Location", "/mypage?welcome=1"),
            *[("X-Echo-Set-Cookie", cookie) for cookie in cookies],
        ],
    )
    assert response.status_code == 303  # the client follows it, not the gateway
    assert response.headers["location"] == "/mypage?welcome=1"
    assert response.headers.get_list("set-cookie") == cookies
    assert response.json()["method"] == "POST"


async def test_one_visitors_set_cookie_never_reaches_another_visitors_request(
    client: httpx.AsyncClient,
) -> None:
    """Kind: a client shared by many callers that keeps cookies (httpx's default jar). The
    gateway's pool stored web's first ``Set-Cookie: msa_session=...`` and sent it with every
    later cookieless request: every visitor shared the first visitor's session."""
    first = await client.get("/", headers={"X-Echo-Set-Cookie": "msa_session=first; Path=/"})
    assert first.headers.get_list("set-cookie") == ["msa_session=first; Path=/"]
    client.cookies.clear()  # the next request is another browser's: it has no cookie
    for path in ("/", "/boards"):
        seen = (await client.get(path)).json()
        assert "cookie" not in seen["headers"], seen["headers"]
    # a browser's own cookie still passes, alone
    seen = (await client.get("/", headers={"Cookie": "msa_session=mine"})).json()
    assert seen["headers"]["cookie"] == "msa_session=mine"


async def test_a_page_path_with_another_method_is_405(client: httpx.AsyncClient) -> None:
    """The refusal is the gateway's page (test_error_pages.py), not sent to web."""
    response = await client.delete("/boards")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "x-echo-upstream" not in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/nope",
        "/API/boards",
        "/internal/questions/1/answers/2/acceptance-check",
        "/.well-known/jwks.json",
        "/docs/nope",
        "/openapi",
        "/metrics/x",
        "/api/boards/",
        "/boards/",
        "/boards//posts",
        "//api/boards",
        "/boards/../api/boards",
        "/%2e%2e/internal/x",
        "/boards/%2E/posts",
    ],
)
async def test_unknown_paths_are_a_problem_404(gateway: ServiceProcess, path: str) -> None:
    """Sent byte for byte (an HTTP client would normalise the dot segments away first)."""
    assert gateway.port is not None
    status, headers, body = await raw_request(gateway.port, "GET", path)
    assert status == 404, body[:200]
    assert headers["content-type"] == "application/problem+json"
    assert b'"status":404' in body.replace(b" ", b"")
    assert "x-echo-upstream" not in headers


async def test_a_known_path_with_another_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/boards")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert response.headers["content-type"] == "application/problem+json"


async def test_upstream_client_errors_pass_through_unchanged(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/boards", headers={"X-Echo-Status": "409"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/json"
    assert response.json()["upstream"] == "board"


async def test_cors_preflight_is_answered_for_configured_origins(
    client: httpx.AsyncClient,
) -> None:
    allowed = await client.options(
        "/api/questions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
            "X-Request-ID": "preflight-1",
        },
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    # answered by the CORS middleware itself, yet inside the request context
    assert allowed.headers["x-request-id"] == "preflight-1"
    simple = await client.get("/api/boards", headers={"Origin": "http://localhost:3000"})
    assert simple.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    other = await client.get("/api/boards", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_readiness_health_and_metrics(
    client: httpx.AsyncClient, gateway: ServiceProcess
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    # no upstream; the JWKS is the verifier's state, not a call (degraded while unavailable)
    assert ready.json()["checks"] == {"redis": "up", "jwks": "up"}
    assert (await client.get("/healthz")).status_code == 200
    before = await metric(
        gateway,
        "gateway_upstream_requests_total",
        upstream="board",
        route="GET /api/boards",
        outcome="success",
    )
    await client.get("/api/boards")
    after = await metric(
        gateway,
        "gateway_upstream_requests_total",
        upstream="board",
        route="GET /api/boards",
        outcome="success",
    )
    assert after == (before or 0) + 1
    count = await metric(
        gateway,
        "gateway_upstream_duration_seconds_count",
        upstream="board",
        route="GET /api/boards",
    )
    assert count is not None
    assert count >= 1
    assert await metric(gateway, "gateway_breaker_state", upstream="board") == 0
    assert await metric(gateway, "gateway_breaker_state", upstream="web") == 0
    served = await metric(
        gateway, "http_requests_total", service="gateway", route="/api/boards", status="200"
    )
    assert served is not None
    assert served >= 1
    await client.get(f"/questions/{uuid.uuid4()}")
    await client.get("/")
    pages = await metric(
        gateway,
        "gateway_upstream_requests_total",
        upstream="web",
        route="GET /{page...}",
        outcome="success",
    )
    assert pages is not None
    assert pages >= 2
    served_pages = await metric(
        gateway, "http_requests_total", service="gateway", route="/{page...}", status="200"
    )
    assert served_pages is not None
    assert served_pages >= 2


async def test_docs_list_every_service_through_the_gateway(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    for name in ("gateway", "member", "board", "qna", "saga"):
        assert f"/openapi/{name}.json" in page.text
    # Served by the gateway process itself: nothing is loaded from outside the machine.
    assert "http://" not in page.text
    assert "https://" not in page.text
    for asset, content_type in (
        ("swagger-ui.css", "text/css"),
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui-standalone-preset.js", "text/javascript"),
    ):
        assert f'"/docs/assets/{asset}"' in page.text
        served = await client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith(content_type)
    board = (await client.get("/openapi/board.json")).json()
    assert board["info"]["title"] == "board (echo upstream)"
    # Only what the route table sends to board; internal endpoints never show.
    summaries = {
        path: {method: operation["summary"] for method, operation in item.items()}
        for path, item in board["paths"].items()
    }
    assert summaries == {"/api/posts/{id}": {"get": "read", "delete": "delete"}}
    # What the edge answers itself is documented on every routed operation, as problems.
    read, delete = (board["paths"]["/api/posts/{id}"][m]["responses"] for m in ("get", "delete"))
    assert {"422", "429", "503", "504"} <= set(read)
    assert "401" not in read
    assert "401" in delete  # the route wants a token
    assert "application/problem+json" in read["503"]["content"]
    assert "Problem" in board["components"]["schemas"]
    assert board["servers"] == [{"url": "/"}]
    saga = (await client.get("/openapi/saga.json")).json()
    assert saga["paths"] == {}
    own = (await client.get("/openapi/gateway.json")).json()
    assert "/api/me/dashboard" in own["paths"]
    for name in ("nope", "web"):  # web is an upstream without an API document
        missing = await client.get(f"/openapi/{name}.json")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
