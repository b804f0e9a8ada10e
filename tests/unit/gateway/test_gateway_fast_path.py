"""The gateway's upstream exchange on aiohttp: what goes on the wire, trace context, keep-alive reuse and retries.

Each test talks to a real HTTP/1.1 server on a loopback socket (asyncio streams), so the bytes
checked are the bytes the pool wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from chassis.problems import ServiceUnavailable
from gateway import pool as pool_module
from gateway.config import Settings
from gateway.pool import ConnectionPool, UpstreamReply
from gateway.proxy import Upstreams

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


@pytest.fixture
async def listen() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


class Recorder:
    """Answers every request with ``OK`` on a keep-alive connection and keeps the raw requests."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                self.requests.append(await read_request(reader))
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def pool_at(port: int, **kwargs: int) -> ConnectionPool:
    return ConnectionPool(
        f"http://127.0.0.1:{port}",
        max_connections=kwargs.get("max_connections", 10),
        connect_timeout=1.0,
        max_response_bytes=1 << 20,
    )


def head_lines(request: bytes) -> list[bytes]:
    return request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


async def test_only_the_caller_s_headers_go_upstream_plus_host_and_length(
    listen: Callable[[Handler], Awaitable[int]],
) -> None:
    recorder = Recorder()
    pool = pool_at(await listen(recorder))
    try:
        await pool.request("GET", "/api/boards", [(b"accept", b"application/json")], b"")
        await pool.request("POST", "/api/boards", [(b"x-one", b"1"), (b"x-one", b"2")], b"{}")
        await pool.request("DELETE", "/api/posts/1", [], b"")
        await pool.request("PATCH", "/api/posts/1", [], b"")
    finally:
        await pool.aclose()
    get, post, delete, patch = (head_lines(r) for r in recorder.requests)
    names = [
        {line.split(b":")[0].lower() for line in lines[1:]} for lines in (get, post, delete, patch)
    ]
    # No User-Agent, Accept-Encoding, Content-Type or Connection of the client library's own.
    assert names[0] == {b"host", b"accept"}
    assert names[1] == {b"host", b"x-one", b"content-length"}
    assert names[2] == names[3] == {b"host", b"content-length"}  # "0": an empty body
    assert b"x-one: 1" in post
    assert b"x-one: 2" in post
    assert b"content-length: 2" in [line.lower() for line in post]
    assert b"content-length: 0" in [line.lower() for line in patch]
    assert recorder.requests[1].endswith(b"\r\n\r\n{}")


async def test_the_target_is_sent_exactly_as_encoded(
    listen: Callable[[Handler], Awaitable[int]],
) -> None:
    recorder = Recorder()
    pool = pool_at(await listen(recorder))
    target = "/api/posts/a%2Fb%3F%23%25/comments?q=%ED%95%9C+x&page=2&q=%2526"
    try:
        await pool.request("GET", target, [], b"")
    finally:
        await pool.aclose()
    assert head_lines(recorder.requests[0])[0] == f"GET {target} HTTP/1.1".encode()


async def test_concurrent_exchanges_reuse_a_bounded_set_of_connections(
    listen: Callable[[Handler], Awaitable[int]],
) -> None:
    recorder = Recorder()
    pool = pool_at(await listen(recorder), max_connections=4)
    try:
        for _ in range(5):
            replies = await asyncio.gather(*(pool.request("GET", "/", [], b"") for _ in range(8)))
            assert {r.status for r in replies} == {200}
    finally:
        await pool.aclose()
    assert len(recorder.requests) == 40
    assert recorder.connections <= 4


def traceparent_of(request: bytes) -> str:
    for line in head_lines(request)[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"traceparent":
            return value.strip().decode()
    raise AssertionError(f"no traceparent in {request!r}")


async def test_the_upstream_continues_the_gateway_s_trace_in_a_client_span(
    listen: Callable[[Handler], Awaitable[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    pool = pool_at(await listen(recorder))
    # A provider of this test's own: the process-wide one (and its auto-instrumentation of
    # httpx, which rewrites traceparent headers) stays untouched for the tests that follow.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(pool_module, "tracer", provider.get_tracer("gateway.pool"))
    tracer = provider.get_tracer("test")
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        with tracer.start_as_current_span("server") as server:
            await pool.request("GET", "/", [(b"traceparent", caller.encode())], b"")
            ours = server.get_span_context()
        # Unsampled request: no client span, the server span's context goes on as it is.
        unsampled = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(0))
        with trace.use_span(NonRecordingSpan(unsampled)):
            await pool.request("GET", "/", [(b"traceparent", caller.encode())], b"")
    finally:
        await pool.aclose()
    _, trace_id, span_id, flags = traceparent_of(recorder.requests[0]).split("-")
    assert int(trace_id, 16) == ours.trace_id  # the same trace ...
    assert int(flags, 16) & 1  # sampled
    (client,) = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert client.context is not None
    assert client.parent is not None
    assert int(span_id, 16) == client.context.span_id  # ... continued from a client span
    assert client.parent.span_id == ours.span_id  # under the gateway's server span
    assert client.attributes is not None
    assert client.attributes["http.response.status_code"] == 200
    assert traceparent_of(recorder.requests[1]) == f"00-{0x1234:032x}-{0x5678:016x}-00"


class DropsReusedConnections:
    """Answers the first request of each connection, then closes it when the next request on
    it arrives, unanswered: what a keep-alive connection the upstream times out just as the
    gateway reuses it looks like."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.requests.append(await read_request(reader))
            writer.write(OK)
            await writer.drain()
            self.requests.append(await read_request(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def upstreams_at(port: int) -> Upstreams:
    settings = Settings(
        BOARD_URL=f"http://127.0.0.1:{port}",
        UPSTREAM_RETRY_ATTEMPTS=3,
        UPSTREAM_RETRY_BACKOFF_SECONDS=0,
    )
    upstreams = Upstreams(settings)
    await upstreams.open()
    return upstreams


async def call(upstreams: Upstreams, method: str) -> UpstreamReply:
    return await upstreams.call(
        upstreams["board"], method, "/api/boards", [], b"", timeout=5, route=f"{method} /x"
    )


async def test_a_dropped_keep_alive_connection_is_retried_for_a_get(
    listen: Callable[[Handler], Awaitable[int]],
) -> None:
    server = DropsReusedConnections()
    upstreams = await upstreams_at(await listen(server))
    try:
        assert (await call(upstreams, "GET")).status == 200
        assert (await call(upstreams, "GET")).status == 200  # dropped, then a new connection
    finally:
        await upstreams.aclose()
    assert len(server.requests) == 3


async def test_a_dropped_keep_alive_connection_is_never_retried_for_a_post(
    listen: Callable[[Handler], Awaitable[int]],
) -> None:
    server = DropsReusedConnections()
    upstreams = await upstreams_at(await listen(server))
    try:
        assert (await call(upstreams, "POST")).status == 200
        with pytest.raises(ServiceUnavailable):
            await call(upstreams, "POST")  # it may have been done: never sent twice
    finally:
        await upstreams.aclose()
    assert len(server.requests) == 2
