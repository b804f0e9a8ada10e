"""Resilient service-to-service HTTP: explicit timeouts, and retries only for idempotent methods."""

from __future__ import annotations

import asyncio
import random

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


def create_http_client(
    base_url: str = "",
    *,
    timeout: float = 5.0,
    connect_timeout: float = 1.0,
    attempts: int = 3,
    max_connections: int = 200,
) -> httpx.AsyncClient:
    """A pooled client: create one per upstream in the lifespan and close it on shutdown."""
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
    )
