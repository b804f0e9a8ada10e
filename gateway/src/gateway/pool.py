"""Connection pool: keep-alive HTTP/1.1 connections to one upstream, responses parsed by httptools.

This is the proxy's hot path, so it does only what the gateway needs. A general-purpose client
(httpx over httpcore, h11 and anyio) spent 1 to 3 ms of CPU per upstream call on the
benchmark machine, more than everything else the gateway does together (see docs/gateway.md);
this pool does the same exchange for about 0.05 ms, with the C parser uvicorn already uses.

What it does: one request at a time per connection (no pipelining), idle connections reused
newest first and dropped before the upstream's own keep-alive timeout, at most
``max_connections`` exchanges in flight, a bounded connect, plain HTTP or TLS.
What it leaves out on purpose: redirects, cookies, decompression (bodies pass through as they
are), HEAD (no route uses it), and responses delimited by closing the connection (uvicorn
always frames its responses with Content-Length or chunked encoding).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

#: uvicorn closes an idle keep-alive connection after 5 s; never reuse one that old, so a
#: request is not written on a connection the upstream is closing.
KEEPALIVE_SECONDS = 4.0


class UpstreamError(Exception):
    """The exchange failed before a complete response arrived."""


class ConnectFailed(UpstreamError):
    """No connection could be made (refused, unreachable, or too slow to accept)."""


class ConnectionBroken(UpstreamError):
    """The connection was lost, or the upstream answered something that is not HTTP."""


@dataclass(frozen=True)
class UpstreamReply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP connection; ``exchange`` writes a request and waits for its complete response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[UpstreamReply] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionBroken("the upstream closed the connection"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"the upstream's answer is not valid HTTP: {exc}"))
            self.close()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints); the real one follows
        self.reusable = self.parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(UpstreamReply(status, self._headers, b"".join(self._body)))

    # use

    async def exchange(self, request: bytes) -> UpstreamReply:
        if self.closed or self.transport is None:
            raise ConnectionBroken("the connection is closed")
        self.reusable = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: UpstreamError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class ConnectionPool:
    """Connections to one upstream (``http://host:port`` or ``https://...``)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        connect_timeout: float,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.host_header = parts.netloc.encode("idna")
        self.connect_timeout = connect_timeout
        self.keepalive_seconds = keepalive_seconds
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: collections.deque[_Connection] = collections.deque()
        self._closed = False

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamReply:
        """Send ``method target`` with ``headers`` (no Host, no Content-Length: the pool writes
        them) and ``body``; return the complete response. Raises UpstreamError."""
        if method == "HEAD":
            raise ValueError("HEAD is not supported: its response has no body to frame")
        request = self._serialize(method, target, headers, body)
        async with self._slots:
            connection = self._take_idle() or await self._connect()
            try:
                reply = await connection.exchange(request)
            except BaseException:
                # An error, a timeout or a cancellation mid-exchange: whatever the upstream
                # still sends on this connection belongs to nobody, so it is never reused.
                connection.close()
                raise
            if connection.reusable and not connection.closed and not self._closed:
                connection.idle_since = asyncio.get_running_loop().time()
                self._idle.append(connection)
            else:
                connection.close()
            return reply

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    def _serialize(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        parts = [f"{method} {target} HTTP/1.1\r\nhost: ".encode("latin-1"), self.host_header]
        for name, value in headers:
            parts += [b"\r\n", name, b": ", value]
        if body or method in ("POST", "PUT", "PATCH"):
            parts += [b"\r\ncontent-length: ", str(len(body)).encode()]
        parts += [b"\r\n\r\n", body]
        return b"".join(parts)

    def _take_idle(self) -> _Connection | None:
        """The most recently used live connection; stale ones are closed on the way."""
        if not self._idle:
            return None
        oldest_usable = asyncio.get_running_loop().time() - self.keepalive_seconds
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and connection.idle_since > oldest_usable:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(
                f"cannot connect to {self.host}:{self.port}: {type(exc).__name__} {exc}"
            ) from exc
        return connection
