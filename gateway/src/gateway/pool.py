"""Connection pool: one keep-alive aiohttp connector per upstream, passing bodies through byte for byte.

The proxy hands over raw header pairs and a body and gets back the upstream's status, raw
headers and raw (still encoded) body, so what the client sent and what the service answered
cross the gateway unchanged. Keep-alive, connection limits and HTTP/1.1 framing (its C parser)
are aiohttp's; the deadline of a whole exchange (retries included) is the route's, set by the
proxy. aiohttp rather than httpx: on a pool of 16 busy connections an httpx exchange cost the
gateway about 1.2 ms of CPU (httpcore checks every idle connection's socket on each request),
an aiohttp exchange under 0.1 ms (docs/gateway.md "What a proxied request costs").

The pool opens the client span of each exchange itself and sends its context upstream
(``traceparent``, ``tracestate``, ``baggage``), so the service continues the gateway's trace.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict
from opentelemetry import propagate, trace
from yarl import URL

tracer = trace.get_tracer("gateway.pool")

#: Headers aiohttp would add on its own: forward only the caller's (``Host`` and the body's
#: ``Content-Length`` are the only ones the pool writes).
_NO_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


class UpstreamError(Exception):
    """The exchange failed before a complete response arrived."""


class ConnectFailed(UpstreamError):
    """No connection could be made (refused, unreachable, or too slow to accept)."""


class ConnectionBroken(UpstreamError):
    """The connection was lost, or the upstream answered something that is not HTTP."""


class ResponseTooLarge(Exception):
    """The upstream answered, but with more bytes than the gateway passes on. The upstream is
    alive, so this is not a transport failure: no retry, and the breaker does not count it."""


@dataclass(frozen=True)
class UpstreamReply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ConnectionPool:
    """Keep-alive connections to one upstream, at most ``max_connections`` at a time.

    ``connect_timeout`` (seconds) bounds opening one TCP connection, not the wait for a free
    one; ``keepalive_seconds`` is how long an idle connection is kept (below uvicorn's 5 s, so
    the pool retires a connection before the upstream closes it under a request). The session
    is created on the first request, inside the running event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        connect_timeout: float,
        max_response_bytes: int,
        keepalive_seconds: float = 4.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"the upstream base URL must be http(s): {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.keepalive_seconds = keepalive_seconds
        self.max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None
        self._peer: dict[str, str | int] = {
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        }

    def _open(self) -> aiohttp.ClientSession:
        session = self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                keepalive_timeout=self.keepalive_seconds,
            ),
            # The route's deadline bounds the whole exchange; only connecting fails faster.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            # One session serves every visitor: web's Set-Cookie (a session) must go back to
            # the one browser it was meant for, never into the next visitor's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_NO_AUTO_HEADERS,
            auto_decompress=False,  # the body passes as it was encoded
            trust_env=False,
        )
        return session

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamReply:
        """Send one request and read the whole answer, as it was encoded.

        ``target`` is the path and query, already percent-encoded: it is sent as it is.
        Raises :class:`ConnectFailed`, :class:`ConnectionBroken` or :class:`ResponseTooLarge`."""
        session = self._session or self._open()
        outgoing = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in headers)
        url = URL(self.base_url + target, encoded=True)
        # An empty body is sent as ``Content-Length: 0`` by aiohttp on every method but GET,
        # HEAD, OPTIONS and TRACE, which go without one.
        data = body or None
        parent = trace.get_current_span()
        if not parent.is_recording():
            # Unsampled: no span of our own, but the trace (and its sampling decision) goes on.
            propagate.inject(outgoing)
            return await self._exchange(session, method, url, outgoing, data)
        with tracer.start_as_current_span(
            method,
            kind=trace.SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.full": str(url), **self._peer},
        ) as span:
            propagate.inject(outgoing)
            reply = await self._exchange(session, method, url, outgoing, data)
            span.set_attribute("http.response.status_code", reply.status)
            if reply.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return reply

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        data: bytes | None,
    ) -> UpstreamReply:
        try:
            async with session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            ) as response:
                raw = await self._read_bounded(response)
                return UpstreamReply(response.status, list(response.raw_headers), raw)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {self.base_url}: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # OSError: a socket error aiohttp did not wrap (the route's deadline is not one: it
            # cancels this task and becomes TimeoutError only in the caller's ``asyncio.timeout``).
            raise ConnectionBroken(f"{type(exc).__name__}: {exc}") from exc

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        """The raw body, refused as soon as it is known to exceed the limit: from its
        ``Content-Length`` before reading, or while reading a chunked one. A refused answer's
        connection is closed, never handed to the next request with bytes still unread."""
        limit = self.max_response_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            response.close()
            raise ResponseTooLarge(f"the answer declares {declared} bytes (limit {limit})")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                response.close()
                raise ResponseTooLarge(f"the answer exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            # Let the transports finish closing before the loop goes away.
            await asyncio.sleep(0)
