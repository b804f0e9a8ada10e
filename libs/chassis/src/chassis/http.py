"""Resilient service-to-service HTTP: explicit timeouts, retries only for idempotent methods, failover between replicas."""

from __future__ import annotations

import asyncio
import itertools
import random
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from urllib.request import Request

import httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})


class RetryTransport(httpx.AsyncBaseTransport):
    """Retry idempotent requests on connection errors and 502/503/504, with capped, jittered backoff."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        attempts: int = 3,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
    ) -> None:
        self.inner = inner
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        retryable = request.method in IDEMPOTENT_METHODS
        attempts = self.attempts if retryable else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self.inner.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError):
                if last:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
                await response.aclose()
            await asyncio.sleep(self.delay(attempt))
        raise RuntimeError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.inner.aclose()


class FailoverTransport(httpx.AsyncBaseTransport):
    """Client-side balancing over the replicas of one service: each request goes to the next
    replica (round robin), and when its connection cannot be opened (refused, or not accepted
    in time: nothing was sent) to the one after, for every method, until each was tried once.

    ``origins`` are the replicas' base URLs, which differ only in scheme, host and port (a
    path prefix must be the same for all). Where a Kubernetes Service or a compose service
    balances behind one address, there is one origin and nothing to fail over to; a list is
    what ``make run`` passes when it starts several replicas of an API (deploy/local/run.py).
    A request whose connection broke after it was sent is not this transport's to repeat:
    ``RetryTransport`` around it retries idempotent methods, on the next replica."""

    def __init__(self, inner: httpx.AsyncBaseTransport, origins: list[str]) -> None:
        urls = [httpx.URL(origin) for origin in origins]
        if not urls:
            raise ValueError("no replica URL")
        if len({url.path.rstrip("/") for url in urls}) > 1:
            raise ValueError(f"replica URLs must differ only in their origin: {origins}")
        self.inner = inner
        self.origins = urls
        self._cursor = itertools.count()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        start = next(self._cursor)
        count = len(self.origins)
        for tried in range(1, count + 1):
            origin = self.origins[(start + tried - 1) % count]
            request.url = request.url.copy_with(
                scheme=origin.scheme, host=origin.host, port=origin.port
            )
            request.headers["Host"] = origin.netloc.decode("ascii")
            try:
                return await self.inner.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if tried == count:
                    raise
        raise RuntimeError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.inner.aclose()


def split_base_urls(value: str) -> list[str]:
    """``"http://a:1,http://b:2"`` -> the replicas' base URLs (one for a plain URL)."""
    return [url.strip() for url in value.split(",") if url.strip()] or [value]


class _KeepNoCookies(DefaultCookiePolicy):
    """A policy that neither stores a cookie from an answer nor sends one with a request."""

    def set_ok(self, cookie: Cookie, request: Request) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Request) -> bool:
        return False


def no_cookie_jar() -> CookieJar:
    """A cookie jar that never keeps nor sends a cookie: pass it as ``cookies=`` to every
    ``httpx.AsyncClient`` that several callers share.

    httpx keeps the cookies of every answer in the client and sends them with every later
    request (a browser's behaviour). A client shared by many users, such as the gateway's
    pool to an upstream, web's client to the gateway, or a service calling another with a
    user's token, would then carry one user's ``Set-Cookie`` (a session) into another user's
    request. A cookie a caller means to send is in its own ``Cookie`` header, which passes
    unchanged."""
    return CookieJar(policy=_KeepNoCookies())


def create_http_client(
    base_url: str = "",
    *,
    timeout: float = 5.0,
    connect_timeout: float = 1.0,
    attempts: int = 3,
    max_connections: int = 200,
) -> httpx.AsyncClient:
    """A pooled client: create one per upstream in the lifespan and close it on shutdown.
    It keeps no cookies (``no_cookie_jar``). ``base_url`` is one URL, or the replicas of one
    service comma-separated (``http://127.0.0.1:8003,http://127.0.0.1:8013``), which the client
    balances over and fails over between (``FailoverTransport``)."""
    inner: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
    )
    replicas = split_base_urls(base_url) if base_url else []
    if len(replicas) > 1:
        inner = FailoverTransport(inner, replicas)
    transport = RetryTransport(inner, attempts=attempts)
    return httpx.AsyncClient(
        base_url=replicas[0] if replicas else base_url,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        cookies=no_cookie_jar(),  # shared by every caller: no one's cookie reaches another
    )
