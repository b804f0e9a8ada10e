"""Resilient service-to-service HTTP: explicit timeouts, and retries only for idempotent methods."""

from __future__ import annotations

import asyncio
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
    It keeps no cookies (``no_cookie_jar``)."""
    transport = RetryTransport(
        httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
        ),
        attempts=attempts,
    )
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        cookies=no_cookie_jar(),  # shared by every caller: no one's cookie reaches another
    )
