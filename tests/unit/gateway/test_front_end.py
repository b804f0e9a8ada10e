"""The front-end fallback through the whole gateway app: a page reaches web as the browser sent it, and
web's answer (several ``Set-Cookie``, a 303 and its ``Location``) comes back as web gave it.

Web stands in as a scripted connection pool (a hand-written fake of the gateway's own port); the
real processes are in tests/system/gateway/test_routing.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from chassis.auth import Principal
from chassis.problems import TooManyRequests
from gateway.auth import TokenRevoked
from gateway.bootstrap import build_api
from gateway.config import Settings
from gateway.pool import ConnectFailed, ResponseTooLarge, UpstreamReply
from gateway.proxy import Proxy, admit
from gateway.routes import ANONYMOUS

HTML = [(b"content-type", b"text/html; charset=utf-8")]


@dataclass
class Sent:
    method: str
    target: str
    headers: dict[bytes, list[bytes]]
    body: bytes


@dataclass
class ScriptedWeb:
    """Stands in for web's ``ConnectionPool``: records what it was sent and answers from
    ``replies`` in turn (the last one again and again); an exception in it is raised."""

    replies: list[UpstreamReply | Exception]
    delay: float = 0.0
    sent: list[Sent] = field(default_factory=list)

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamReply:
        grouped: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            grouped.setdefault(name, []).append(value)
        self.sent.append(Sent(method, target, grouped, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.replies[min(len(self.sent), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        return None


def page(status: int = 200, body: bytes = b"<p>page</p>", headers: Any = ()) -> UpstreamReply:
    return UpstreamReply(status, [*HTML, *headers], body)


class Keys:
    """Stands in for the rate limiter: the key every request was counted under."""

    def __init__(self) -> None:
        self.counted: list[str] = []

    async def check(self, key: str) -> None:
        self.counted.append(key)


class RevokedAuth:
    """Every bearer token is a revoked one (its member withdrew); records that it was asked."""

    def __init__(self) -> None:
        self.read: list[str] = []

    async def authenticate(self, authorization: str) -> Principal:
        self.read.append(authorization)
        raise TokenRevoked()


Gateway = Callable[..., Any]


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    """``gateway(web, **settings)``: a client of a gateway app whose web upstream is ``web``."""
    clients: list[httpx.AsyncClient] = []

    def make(web: ScriptedWeb, **overrides: Any) -> httpx.AsyncClient:
        values: dict[str, Any] = {
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "RATE_LIMIT_PER_MINUTE": 0,
            "UPSTREAM_RETRY_BACKOFF_SECONDS": 0,
            **overrides,
        }
        app = build_api(Settings(**values))
        proxy: Proxy = app.state.proxy
        proxy.upstreams["web"].replicas[0].pool = web
        proxy.limiter = Keys()  # type: ignore[assignment]
        proxy.auth = RevokedAuth()  # type: ignore[assignment]
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://test")
        client.app = app  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def proxy_of(client: httpx.AsyncClient) -> Proxy:
    proxy: Proxy = client.app.state.proxy  # type: ignore[attr-defined]
    return proxy


async def test_several_set_cookie_headers_and_a_303_pass_through_unchanged(
    gateway: Gateway,
) -> None:
    """Kind: a proxy that folds repeated headers into one, or follows a redirect itself. A
    ``Set-Cookie`` cannot be joined with commas (RFC 6265 §3: its date has one), and a 303
    after a form post is the browser's to follow (the POST/redirect/GET pattern)."""
    cookies = [
        b"msa_session=abc; HttpOnly; Path=/; SameSite=Lax; Max-Age=1209600",
        b"lang=ko; Path=/; Expires=Wed, 09 Jun 2027 10:18:14 GMT",
        b"flash=; Path=/; Max-Age=0",
    ]
    web = ScriptedWeb(
        [
            page(
                303,
                b"",
                [(b"location", b"/boards/1?saved=1#top")] + [(b"set-cookie", c) for c in cookies],
            )
        ]
    )
    client = gateway(web)
    response = await client.post(
        "/login",
        content=b"email=a%40example.com&password=pw&csrf_token=t",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/boards/1?saved=1#top"
    assert [c.encode() for c in response.headers.get_list("set-cookie")] == cookies
    assert len(web.sent) == 1  # not followed, not retried


async def test_cookies_and_a_form_body_reach_web_unchanged(gateway: Gateway) -> None:
    web = ScriptedWeb([page()])
    client = gateway(web)
    body = b"title=%EC%95%88%EB%85%95&body=a%26b%3Dc&csrf_token=t0k"
    response = await client.post(
        "/boards/1/posts?draft=1",
        content=body,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "cookie": "msa_session=abc; lang=en",
            "origin": "http://test",
            "accept-language": "ko-KR,ko;q=0.9",
        },
    )
    assert response.status_code == 200
    assert response.text == "<p>page</p>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    sent = web.sent[0]
    assert (sent.method, sent.target, sent.body) == ("POST", "/boards/1/posts?draft=1", body)
    assert sent.headers[b"cookie"] == [b"msa_session=abc; lang=en"]
    assert sent.headers[b"content-type"] == [b"application/x-www-form-urlencoded"]
    assert sent.headers[b"origin"] == [b"http://test"]
    assert sent.headers[b"accept-language"] == [b"ko-KR,ko;q=0.9"]
    assert sent.headers[b"x-forwarded-for"] == [b"192.0.2.7"]
    assert sent.headers[b"x-forwarded-proto"] == [b"http"]
    assert sent.headers[b"x-forwarded-host"] == [b"test"]  # the Origin check's other half


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_bearer_token_on_a_page_is_neither_read_nor_forwarded(
    gateway: Gateway, method: str
) -> None:
    """Kind: a stale credential locking a page. A browser sends no bearer token; one sent anyway,
    even a revoked one, must not turn a page into a 401, and web (which never checks one) does
    not get it. The request is counted by client address like any anonymous one."""
    web = ScriptedWeb([page()])
    client = gateway(web)
    response = await client.request(method, "/mypage", headers={"authorization": "Bearer x.y.z"})
    assert response.status_code == 200, response.text
    assert b"authorization" not in web.sent[0].headers
    proxy = proxy_of(client)
    assert proxy.auth.read == []  # type: ignore[attr-defined]
    assert proxy.limiter.counted == ["ip:192.0.2.7"]  # type: ignore[attr-defined]
    # The API's public routes still read it: a revoked token is refused there.
    refused = await client.get("/api/boards", headers={"authorization": "Bearer x.y.z"})
    assert refused.status_code == 401


async def test_every_page_is_counted_per_client_address(gateway: Gateway) -> None:
    web = ScriptedWeb([page()])
    client = gateway(web)
    for path in ("/", "/static/app.css", "/boards"):
        assert (await client.get(path)).status_code == 200
    assert (await client.head("/")).status_code == 200
    assert proxy_of(client).limiter.counted == ["ip:192.0.2.7"] * 4  # type: ignore[attr-defined]


async def test_head_on_a_page_is_web_s_get_without_its_body(gateway: Gateway) -> None:
    web = ScriptedWeb([page(body=b"x" * 321)])
    client = gateway(web)
    response = await client.head("/boards")
    assert response.status_code == 200
    assert response.headers["content-length"] == "321"
    assert response.content == b""
    assert web.sent[0].method == "GET"


async def test_a_page_has_the_front_end_s_deadline_not_the_api_s(gateway: Gateway) -> None:
    """Kind: the edge giving up before the process behind it. A page may wait on the slowest API
    call (10 s) through web: a page slower than ``UPSTREAM_TIMEOUT_SECONDS`` still arrives, and
    only ``WEB_TIMEOUT_SECONDS`` bounds it."""
    slow = ScriptedWeb([page()], delay=0.3)
    client = gateway(slow, UPSTREAM_TIMEOUT_SECONDS=0.1, WEB_TIMEOUT_SECONDS=2)
    assert (await client.get("/questions")).status_code == 200
    too_slow = ScriptedWeb([page()], delay=1.0)
    client = gateway(too_slow, UPSTREAM_TIMEOUT_SECONDS=5, WEB_TIMEOUT_SECONDS=0.2)
    response = await client.get("/questions")
    assert response.status_code == 504


async def test_a_page_get_is_retried_and_a_form_post_is_not(gateway: Gateway) -> None:
    """Web is an upstream like the others: a GET meeting a 503 is tried again, a POST (a form
    that may have done something) is answered with what web said."""
    web = ScriptedWeb([page(503), page(503), page()])
    client = gateway(web, UPSTREAM_RETRY_ATTEMPTS=3)
    assert (await client.get("/boards")).status_code == 200
    assert len(web.sent) == 3
    web = ScriptedWeb([page(503), page()])
    client = gateway(web, UPSTREAM_RETRY_ATTEMPTS=3)
    assert (await client.post("/boards", content=b"a=1")).status_code == 503
    assert len(web.sent) == 1


async def test_web_has_its_own_circuit_breaker(gateway: Gateway) -> None:
    down = ScriptedWeb([ConnectFailed("refused")])
    client = gateway(
        down, UPSTREAM_RETRY_ATTEMPTS=1, BREAKER_FAILURE_THRESHOLD=2, BREAKER_RESET_SECONDS=60
    )
    for _ in range(2):
        assert (await client.get("/")).status_code == 503
    response = await client.get("/")
    assert response.status_code == 503
    assert response.headers["content-type"] == "text/html; charset=utf-8"  # a page (below)
    assert int(response.headers["retry-after"]) >= 1
    assert len(down.sent) == 2  # the open circuit sent nothing
    assert proxy_of(client).upstreams["member"].breaker.allow()  # the services' are their own


async def test_pages_are_labelled_by_one_route_name_per_method(gateway: Gateway) -> None:
    """Bounded label cardinality: however many pages, one label per method."""
    labels = {"upstream": "web", "route": "GET /{page...}", "outcome": "success"}
    http = {"service": "gateway", "method": "GET", "route": "/{page...}", "status": "200"}
    before = REGISTRY.get_sample_value("gateway_upstream_requests_total", labels) or 0.0
    before_http = REGISTRY.get_sample_value("http_requests_total", http) or 0.0
    client = gateway(ScriptedWeb([page()]))
    for path in ("/", "/boards", "/questions/1", "/static/app.css"):
        assert (await client.get(path)).status_code == 200
    assert REGISTRY.get_sample_value("gateway_upstream_requests_total", labels) == before + 4
    assert REGISTRY.get_sample_value("http_requests_total", http) == before_http + 4


@pytest.mark.parametrize(
    "path",
    ["/api/nothing", "/internal/secret", "/.well-known/jwks.json", "/boards/", "/a/%2e%2e/api"],
)
async def test_nothing_reserved_or_ambiguous_is_sent_to_web(gateway: Gateway, path: str) -> None:
    web = ScriptedWeb([page()])
    client = gateway(web)
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert web.sent == []


async def test_admit_reads_no_token_for_an_anonymous_route() -> None:
    """The rule itself, whatever header the proxy hands over."""
    auth, limiter = RevokedAuth(), Keys()
    found = await admit(auth, limiter, ANONYMOUS, "Bearer x.y.z", "192.0.2.9")  # type: ignore[arg-type]
    assert found is None
    assert auth.read == []
    assert limiter.counted == ["ip:192.0.2.9"]


# --- The gateway's own answers on a page path are pages (docs/gateway.md "Error pages") ---


class Refusing:
    """Stands in for the rate limiter: every request is over the limit."""

    async def check(self, key: str) -> None:
        raise TooManyRequests("rate limit exceeded", retry_after=17)


def assert_error_page(response: httpx.Response, status: int) -> str:
    """The answer is the gateway's self-contained HTML page for ``status``; returns its text."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    assert html.startswith("<!doctype html>")
    assert int(response.headers["content-length"]) == len(response.content)
    # both languages on one page, Korean first, each marked
    assert '<html lang="ko">' in html
    assert 0 < html.index('<section lang="ko">') < html.index('<section lang="en">')
    assert html.count('<a href="/">') == 2  # home, in each language
    assert f"HTTP {status}" in html
    assert response.headers["x-request-id"] in html
    # nothing loaded from anywhere, and the one inline style allowed by the page's own CSP
    assert not re.search(r"<script|<link|<img|src=|url\(", html)
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert f"style-src 'sha256-{digest}'" in csp
    return html


async def test_a_rate_limited_page_is_a_page_with_retry_after(gateway: Gateway) -> None:
    """Kind: the gateway's own refusal shown to a browser as raw JSON. Every page view costs
    several requests of one address's budget; the refusal must read as a page."""
    web = ScriptedWeb([page()])
    client = gateway(web)
    proxy_of(client).limiter = Refusing()  # type: ignore[assignment]
    response = await client.get("/boards")
    html = assert_error_page(response, 429)
    assert response.headers["retry-after"] == "17"
    assert "요청이 너무 많습니다" in html
    assert "Too many requests" in html
    assert "17초" in html
    assert "17 s" in html
    assert web.sent == []
    # the API keeps its problem document: clients are written against it
    api = await client.get("/api/boards")
    assert api.status_code == 429
    assert api.headers["content-type"] == "application/problem+json"
    assert api.json()["status"] == 429


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE"])
async def test_a_method_a_page_lacks_is_a_405_page_with_allow(
    gateway: Gateway, method: str
) -> None:
    """PUT, DELETE and PATCH are refused by the route table, TRACE by the method rules before
    it: both are pages, with ``Allow``."""
    web = ScriptedWeb([page()])
    client = gateway(web)
    response = await client.request(method, "/boards/1")
    assert_error_page(response, 405)
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert web.sent == []
    api = await client.request(method, "/api/boards")
    assert api.status_code == 405
    assert api.headers["content-type"] == "application/problem+json"


async def test_an_unimplemented_method_on_a_page_is_a_501_page(gateway: Gateway) -> None:
    client = gateway(ScriptedWeb([page()]))
    assert_error_page(await client.request("PROPFIND", "/boards"), 501)
    api = await client.request("PROPFIND", "/api/boards")
    assert api.headers["content-type"] == "application/problem+json"


async def test_a_form_over_the_body_limit_is_a_413_page(gateway: Gateway) -> None:
    web = ScriptedWeb([page()])
    client = gateway(web, MAX_BODY_BYTES=1024)
    form = {"content-type": "application/x-www-form-urlencoded"}
    response = await client.post("/boards/1/posts", content=b"body=" + b"x" * 2000, headers=form)
    html = assert_error_page(response, 413)
    assert "보낸 내용이 너무 큽니다" in html
    assert "What you sent is too large" in html
    assert web.sent == []


async def test_a_long_query_and_large_headers_are_414_and_431_pages(gateway: Gateway) -> None:
    client = gateway(ScriptedWeb([page()]), MAX_QUERY_BYTES=256, MAX_HEADER_BYTES=1024)
    assert_error_page(await client.get("/questions?q=" + "x" * 300), 414)
    assert_error_page(await client.get("/questions", headers={"cookie": "c=" + "x" * 2000}), 431)


async def test_web_behind_an_open_breaker_is_a_503_page(gateway: Gateway) -> None:
    down = ScriptedWeb([ConnectFailed("refused")])
    client = gateway(
        down, UPSTREAM_RETRY_ATTEMPTS=1, BREAKER_FAILURE_THRESHOLD=1, BREAKER_RESET_SECONDS=60
    )
    assert_error_page(await client.get("/"), 503)  # web cannot be reached
    response = await client.get("/boards")
    html = assert_error_page(response, 503)  # and now its circuit is open
    assert int(response.headers["retry-after"]) >= 1
    assert "잠시 사용할 수 없습니다" in html
    assert "Temporarily unavailable" in html
    assert len(down.sent) == 1
    head = await client.head("/boards")  # the page's headers, without its body
    assert head.status_code == 503
    assert head.headers["content-type"] == "text/html; charset=utf-8"
    assert int(head.headers["content-length"]) > 0
    assert head.content == b""


async def test_web_past_its_deadline_is_a_504_page(gateway: Gateway) -> None:
    slow = ScriptedWeb([page()], delay=1.0)
    client = gateway(slow, WEB_TIMEOUT_SECONDS=0.2)
    form = {"content-type": "application/x-www-form-urlencoded"}
    html = assert_error_page(await client.post("/questions", content=b"a=1", headers=form), 504)
    assert "응답 시간이 초과되었습니다" in html
    assert "The page took too long" in html


async def test_an_answer_too_large_to_pass_on_is_a_502_page(gateway: Gateway) -> None:
    client = gateway(ScriptedWeb([ResponseTooLarge("more than 16 MiB")]))
    assert_error_page(await client.get("/boards"), 502)


async def test_a_bug_at_the_edge_is_a_500_page(gateway: Gateway) -> None:
    client = gateway(ScriptedWeb([RuntimeError("a bug in the gateway")]))
    html = assert_error_page(await client.get("/boards"), 500)
    assert "a bug" not in html  # nothing of the exception reaches the visitor


async def test_web_s_own_answers_pass_unchanged_whatever_their_type(gateway: Gateway) -> None:
    """Only the gateway's own answers are rewritten: web's error page, and even a problem
    document web chose to send, come back as web gave them."""
    problem = UpstreamReply(
        503, [(b"content-type", b"application/problem+json")], b'{"status":503}'
    )
    web = ScriptedWeb([page(503, b"<p>web's own</p>"), problem])
    client = gateway(web, UPSTREAM_RETRY_ATTEMPTS=1)
    first = await client.post("/boards", content=b"a=1")
    assert (first.status_code, first.text) == (503, "<p>web's own</p>")
    second = await client.post("/boards", content=b"a=1")
    assert second.status_code == 503
    assert second.headers["content-type"] == "application/problem+json"
    assert second.content == b'{"status":503}'
