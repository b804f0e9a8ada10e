"""web's gateway client: one client for every visitor, so it keeps no cookie and maps failures to ApiError."""

from __future__ import annotations

import httpx
import pytest

from web.adapters.gateway_client import ApiError, GatewayClient, GatewayUnreachable
from web.config import Settings


async def test_no_visitors_cookie_reaches_another_visitors_call() -> None:
    seen: list[str | None] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json={}, headers={"Set-Cookie": "sticky=alice; Path=/"})

    client = GatewayClient(Settings(), transport=httpx.MockTransport(gateway))
    await client.open()
    try:
        await client.request("GET", "/api/boards", token="alice")
        await client.request("GET", "/api/boards", token="bob")
    finally:
        await client.aclose()
    assert seen == [None, None]


async def test_problem_documents_and_unreachable_gateway() -> None:
    calls = 0

    def gateway(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if request.url.path == "/api/down":
            raise httpx.ConnectError("refused")
        return httpx.Response(409, json={"status": 409, "detail": "already accepted"})

    client = GatewayClient(Settings(), transport=httpx.MockTransport(gateway))
    await client.open()
    try:
        with pytest.raises(ApiError) as refused:
            await client.request("POST", "/api/x", json={})
        assert (refused.value.status, refused.value.problem["detail"]) == (409, "already accepted")
        calls = 0
        with pytest.raises(GatewayUnreachable):
            await client.request("GET", "/api/down")
        assert calls == 2  # a GET is tried twice
        calls = 0
        with pytest.raises(GatewayUnreachable):
            await client.request("POST", "/api/down")
        assert calls == 1  # a write is sent once
    finally:
        await client.aclose()
