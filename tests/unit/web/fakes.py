"""A fake of web's own outbound port (the gateway client) for page tests: canned answers, recorded calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from web.adapters.gateway_client import ApiError, ApiResponse, GatewayClient
from web.config import Settings

Answer = Callable[[dict[str, Any]], tuple[int, Any]]


@dataclass
class Call:
    method: str
    path: str
    token: str | None
    json: Any
    params: dict[str, Any]
    idempotency_key: str | None


@dataclass
class FakeGateway(GatewayClient):
    """``routes[(method, path)]`` is ``(status, body)`` or a function of the call's fields
    returning one; an unknown route is a 404 problem. Every call is kept in ``calls``."""

    routes: dict[tuple[str, str], tuple[int, Any] | Answer] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(Settings())

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

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
        call = Call(method, path, token, json, dict(params or {}), idempotency_key)
        self.calls.append(call)
        answer = self.routes.get((method, path), (404, {"status": 404, "detail": "not found"}))
        status, body = answer(call.__dict__) if callable(answer) else answer
        if status >= 400:
            raise ApiError(status, body if isinstance(body, dict) else {})
        return ApiResponse(status, body, httpx.Headers())
