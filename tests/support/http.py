"""Raw HTTP/1.1 exchanges for tests: a request line sent byte for byte, as no HTTP client sends it."""

from __future__ import annotations

import asyncio


async def raw_request(
    port: int, method: str, target: str, *, host: str = "127.0.0.1", timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send ``method target`` unchanged (no dot-segment removal, no re-encoding, unlike httpx)
    with ``Connection: close``, and read the whole answer: (status, headers with lower-case
    names, the last value of a repeated one, body). Raises ``ConnectionError`` when the server
    closes without an answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    if not raw:
        raise ConnectionError("the server closed the connection without an answer")
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body
