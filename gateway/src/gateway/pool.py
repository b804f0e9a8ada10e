"""Connection pool: one pooled httpx client per upstream, passing bodies through byte for byte.

The proxy hands over raw header pairs and a body and gets back the upstream's status, raw
headers and raw (still encoded) body, so what the client sent and what the service answered
cross the gateway unchanged. Keep-alive, connection limits and HTTP/1.1 framing are httpx's;
the deadline of a whole exchange (retries included) is the route's, set by the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from chassis.http import no_cookie_jar


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
    """Keep-alive connections to one upstream, at most ``max_connections`` at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        connect_timeout: float,
        max_response_bytes: int,
        keepalive_seconds: float = 4.0,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"the upstream base URL must be http(s): {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.max_response_bytes = max_response_bytes
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            # The route's deadline bounds the whole exchange; only connecting fails faster.
            timeout=httpx.Timeout(None, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                # uvicorn closes idle keep-alive connections after 5 s: retire ours first.
                keepalive_expiry=keepalive_seconds,
            ),
            follow_redirects=False,
            trust_env=False,
            # One client serves every visitor: web's Set-Cookie (a session) must go back to
            # the one browser it was meant for, never into the next visitor's request.
            cookies=no_cookie_jar(),
        )
        # No default Accept, Accept-Encoding, Connection or User-Agent: forward only the caller's.
        self.client.headers.clear()

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamReply:
        """Send one request and read the whole answer, as it was encoded."""
        request = self.client.build_request(
            method, target, headers=headers, content=body if body or method != "GET" else None
        )
        try:
            response = await self.client.send(request, stream=True)
            try:
                raw = await self._read_bounded(response)
            finally:
                await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ConnectFailed(f"cannot connect to {self.base_url}: {exc}") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise ConnectionBroken(f"{type(exc).__name__}: {exc}") from exc
        return UpstreamReply(response.status_code, list(response.headers.raw), raw)

    async def _read_bounded(self, response: httpx.Response) -> bytes:
        """The raw body, refused as soon as it is known to exceed the limit: from its
        ``Content-Length`` before reading, or while reading a chunked one."""
        limit = self.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(f"the answer declares {declared} bytes (limit {limit})")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(f"the answer exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self.client.aclose()
