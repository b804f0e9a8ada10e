"""Backend-for-Frontend outbound port: web reaches the system only through the gateway's public HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from chassis.logging import get_logger
from web.config import Settings

log = get_logger(__name__)

#: GET is safe to retry (RFC 9110 §9.2.1); a write is sent once, with its Idempotency-Key.
RETRIED_METHODS = frozenset({"GET", "HEAD"})


@dataclass
class ApiError(Exception):
    """The gateway answered 4xx or 5xx: ``status`` and the RFC 9457 problem document
    (``{"type","title","status","detail","errors"?...}``; empty when the body was not one)."""

    status: int
    problem: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.problem.get('detail') or self.problem.get('title') or ''}"

    @property
    def unavailable(self) -> bool:
        """The API could not serve the call now (502, 503, 504): a message, not the form's fault."""
        return self.status in (502, 503, 504)


class GatewayUnreachable(ApiError):
    """No answer from the gateway at all (connection refused, timeout): shown like a 503."""

    def __init__(self, reason: str) -> None:
        super().__init__(503, {"title": "Service Unavailable", "detail": reason})


@dataclass(frozen=True)
class ApiResponse:
    """A 2xx answer: status, JSON body (``None`` for an empty one) and the headers web reads."""

    status: int
    body: Any
    headers: httpx.Headers


class GatewayPort(Protocol):
    """What web needs of the gateway (``GatewayClient``; unit tests pass a fake of this port)."""

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        client_ip: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> ApiResponse:
        """See ``GatewayClient.request``."""
        ...


class GatewayClient:
    """An httpx pool to ``GATEWAY_URL``, opened and closed with the process.

    ``request`` sends the member's bearer token when given, forwards the browser's address
    as ``X-Forwarded-For`` (the gateway believes it only from addresses it trusts, the
    Kubernetes pod range) and the request id, and raises ``ApiError`` for any status >= 400
    and ``GatewayUnreachable`` when no answer came. GETs are retried once on a transport
    failure; writes never (their Idempotency-Key makes a user's resubmit safe instead)."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        limits = httpx.Limits(
            max_connections=self._settings.GATEWAY_MAX_CONNECTIONS,
            max_keepalive_connections=self._settings.GATEWAY_MAX_CONNECTIONS,
        )
        timeout = httpx.Timeout(
            self._settings.GATEWAY_TIMEOUT_SECONDS,
            connect=self._settings.GATEWAY_CONNECT_TIMEOUT_SECONDS,
        )
        self._client = httpx.AsyncClient(
            base_url=self._settings.GATEWAY_URL.rstrip("/"),
            limits=limits,
            timeout=timeout,
            transport=self._transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        client_ip: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> ApiResponse:
        """Call ``path`` (``/api/...``) on the gateway; see the class docstring for errors."""
        if self._client is None:
            raise RuntimeError("GatewayClient.open() was not awaited")
        headers: dict[str, str] = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if client_ip:
            headers["X-Forwarded-For"] = client_ip
        if request_id:
            headers["X-Request-ID"] = request_id
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        query = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        attempts = 2 if method in RETRIED_METHODS else 1
        for attempt in range(attempts):
            try:
                response = await self._client.request(
                    method,
                    path,
                    headers=headers,
                    json=json,
                    params=query,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
                break
            except httpx.TransportError as exc:
                log.warning("gateway_unreachable", method=method, path=path, error=repr(exc))
                if attempt + 1 == attempts:
                    raise GatewayUnreachable(type(exc).__name__) from exc
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if response.status_code >= 400:
            raise ApiError(response.status_code, body if isinstance(body, dict) else {})
        return ApiResponse(response.status_code, body, response.headers)
