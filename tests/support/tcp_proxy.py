"""Fault injection with a real mechanism: a loopback TCP proxy whose link can be cut and restored.

Point a client at ``proxy.port`` instead of the server's. ``cut()`` resets every open connection
and stops listening, so new connections are refused, as during a server restart; ``restore()``
listens on the same port again. ``stall()`` keeps every connection open and accepts new ones but
forwards no byte either way, as a server that hangs or a network that drops packets does: a
client waits for its own timeout. Nothing of the server is touched, so shared infrastructure
stays up for everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` while not cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.stalled = False
        self._held: set[asyncio.StreamWriter] = set()

    @property
    def is_cut(self) -> bool:
        return self._server is None

    async def start(self) -> TcpProxy:
        if not self.port:
            with socket.socket() as probe:  # a free port, kept for every restore()
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        return self

    def url(self, url: str) -> str:
        """``url`` (e.g. a DATABASE_URL) with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for client, upstream in list(self._links):
            for writer in (client, upstream):
                writer.transport.abort()
        self._links.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stall(self) -> None:
        """Forward nothing from now on: open links stay open and drop every byte, and new
        connections are accepted and held without reaching the server."""
        self.stalled = True

    async def restore(self) -> None:
        """Listen again after ``cut()``; after ``stall()``, drop the silent connections (their
        clients reconnect) and forward again."""
        if self.stalled:
            self.stalled = False
            for client, upstream in list(self._links):
                for writer in (client, upstream):
                    writer.transport.abort()
            self._links.clear()
            for writer in list(self._held):
                writer.transport.abort()
            self._held.clear()
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.stalled:
            self._held.add(writer)  # open, and silent until restore() or cut()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        link = (writer, up_writer)
        self._links.add(link)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if self.stalled:
                    continue  # dropped: the peer waits for an answer that never comes
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError, RuntimeError):
            dst.close()
