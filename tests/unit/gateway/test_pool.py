"""The upstream connection pool against a scripted HTTP server on a loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.pool import ConnectFailed, ConnectionBroken, ConnectionPool, ResponseTooLarge
from tests.support.processes import free_port

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class ScriptedServer:
    """Reads each request (head and Content-Length body) and lets ``reply`` answer it."""

    reply: Reply
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    await self.reply(request, writer)
                finally:
                    self.in_flight -= 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], Awaitable[ScriptedServer]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> ScriptedServer:
        scripted = ScriptedServer(reply)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        scripted.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return scripted

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def pool_for(server: ScriptedServer, **kwargs: float) -> ConnectionPool:
    options = {
        "max_connections": 10,
        "connect_timeout": 1.0,
        "max_response_bytes": 1 << 20,
        **kwargs,
    }
    return ConnectionPool(f"http://127.0.0.1:{server.port}", **options)  # type: ignore[arg-type]


async def answer_ok(_: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(OK)


async def test_connections_are_kept_alive_and_reused(
    serve: Callable[[Reply], Awaitable[ScriptedServer]],
) -> None:
    server = await serve(answer_ok)
    pool = pool_for(server)
    for _ in range(3):
        reply = await pool.request("GET", "/api/boards?page=2", [(b"accept", b"*/*")], b"")
        assert reply.status == 200
        assert reply.body == b"{}"
        assert (b"content-type", b"application/json") in reply.headers
    assert server.connections == 1
    await pool.aclose()


async def test_a_chunked_answer_is_assembled(
    serve: Callable[[Reply], Awaitable[ScriptedServer]],
) -> None:
    async def chunked(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        writer.write(b"3\r\nabc\r\n")
        await writer.drain()
        writer.write(b"2\r\nde\r\n0\r\n\r\n")

    pool = pool_for(await serve(chunked))
    reply = await pool.request("GET", "/", [], b"")
    assert (reply.status, reply.body) == (201, b"abcde")


async def test_connection_close_is_honoured(
    serve: Callable[[Reply], Awaitable[ScriptedServer]],
) -> None:
    async def closing(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await serve(closing)
    pool = pool_for(server)
    for _ in range(2):
        assert (await pool.request("GET", "/", [], b"")).status == 200
    assert server.connections == 2


async def test_an_idle_connection_closed_by_the_upstream_is_replaced(
    serve: Callable[[Reply], Awaitable[ScriptedServer]],
) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def remember(_: bytes, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(OK)

    server = await serve(remember)
    pool = pool_for(server)
    await pool.request("GET", "/", [], b"")
    writers[0].close()  # the upstream's keep-alive timeout
    await asyncio.sleep(0.05)
    assert (await pool.request("GET", "/", [], b"")).status == 200
    assert server.connections == 2


async def test_nobody_listening_is_a_connect_failure() -> None:
    pool = ConnectionPool(
        f"http://127.0.0.1:{free_port()}",
        max_connections=1,
        connect_timeout=1,
        max_response_bytes=1024,
    )
    with pytest.raises(ConnectFailed):
        await pool.request("GET", "/", [], b"")


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", b""],
    ids=["not http", "cut short", "nothing"],
)
async def test_a_broken_answer_is_a_broken_connection(
    serve: Callable[[Reply], Awaitable[ScriptedServer]], answer: bytes
) -> None:
    async def broken(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        writer.close()

    pool = pool_for(await serve(broken))
    with pytest.raises(ConnectionBroken):
        await pool.request("GET", "/", [], b"")


async def test_at_most_max_connections_exchanges_are_in_flight(
    serve: Callable[[Reply], Awaitable[ScriptedServer]],
) -> None:
    async def slow(_: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        writer.write(OK)

    server = await serve(slow)
    pool = pool_for(server, max_connections=2)
    replies = await asyncio.gather(*(pool.request("GET", "/", [], b"") for _ in range(6)))
    assert [r.status for r in replies] == [200] * 6
    assert server.max_in_flight == 2
    assert server.connections == 2


def test_only_http_base_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="base URL"):
        ConnectionPool(
            "ftp://example", max_connections=1, connect_timeout=1, max_response_bytes=1024
        )


async def test_an_answer_declaring_more_than_the_limit_is_refused_before_it_is_read(
    serve: Callable[[Reply], Awaitable[ScriptedServer]],
) -> None:
    async def declares_too_much(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2048\r\n\r\n" + b"x" * 2048)

    pool = pool_for(await serve(declares_too_much), max_response_bytes=2047)
    try:
        with pytest.raises(ResponseTooLarge, match="declares 2048 bytes"):
            await pool.request("GET", "/big", [], b"")
    finally:
        await pool.aclose()


async def test_a_chunked_answer_is_cut_off_once_it_passes_the_limit(
    serve: Callable[[Reply], Awaitable[ScriptedServer]],
) -> None:
    async def streams(request: bytes, writer: asyncio.StreamWriter) -> None:
        size = 4096 if b"/big" in request.split(b"\r\n", 1)[0] else 1024
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(size // 512):
            writer.write(b"200\r\n" + b"y" * 512 + b"\r\n")
        writer.write(b"0\r\n\r\n")

    pool = pool_for(await serve(streams), max_response_bytes=2048)
    try:
        small = await pool.request("GET", "/small", [], b"")
        assert (small.status, len(small.body)) == (200, 1024)
        with pytest.raises(ResponseTooLarge, match="exceeds 2048 bytes"):
            await pool.request("GET", "/big", [], b"")
    finally:
        await pool.aclose()
