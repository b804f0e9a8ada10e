"""A JWKS outage seen by a real service (board api as built by its composition root, real PostgreSQL
and Redis): member's JWKS endpoint behind a TCP proxy that is cut. The kind of fault: an
unreachable dependency reported as a bad token (401), or taking every valid token down with it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from board.bootstrap import build_api
from board.config import Settings
from tests.support.infra import wait_for
from tests.support.jwks_server import JwksServer
from tests.support.tcp_proxy import TcpProxy
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.integration


@pytest.fixture
async def jwks(issuer: TokenIssuer) -> AsyncIterator[tuple[JwksServer, TcpProxy]]:
    server = await JwksServer(issuer).start()
    proxy = await TcpProxy("127.0.0.1", server.port).start()
    try:
        yield server, proxy
    finally:
        await proxy.close()
        await server.stop()


@pytest.fixture
async def client(
    board_settings: Settings, jwks: tuple[JwksServer, TcpProxy]
) -> AsyncIterator[httpx.AsyncClient]:
    """board api with its own verifier (the one ``attach`` builds from the settings)."""
    _, proxy = jwks
    settings = board_settings.model_copy(
        update={
            "JWKS_URL": f"http://127.0.0.1:{proxy.port}/.well-known/jwks.json",
            "JWKS_CACHE_SECONDS": 0.5,
            "JWKS_RETRY_BACKOFF_SECONDS": 0.2,
            "JWKS_RETRY_BACKOFF_MAX_SECONDS": 0.4,
            "JWKS_FETCH_TIMEOUT_SECONDS": 1.0,
        }
    )
    api = build_api(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(api.router.lifespan_context(api))
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://test")
        )


async def open_board(client: httpx.AsyncClient, issuer: TokenIssuer) -> httpx.Response:
    slug = f"b-{uuid.uuid4().hex[:10]}"
    return await client.post(
        "/api/boards",
        json={"slug": slug, "name": "JWKS outage"},
        headers=issuer.headers(uuid.uuid4(), "ADMIN"),
    )


async def jwks_check(client: httpx.AsyncClient) -> str:
    response = await client.get("/readyz")
    assert response.status_code == 200  # degraded, never "not ready"
    check: str = response.json()["checks"]["jwks"]
    return check


async def test_no_keys_and_an_unreachable_jwks_is_503_and_cached_keys_keep_working(
    client: httpx.AsyncClient, issuer: TokenIssuer, jwks: tuple[JwksServer, TcpProxy]
) -> None:
    server, proxy = jwks
    await proxy.cut()  # member's JWKS cannot be reached before the first token arrives

    refused = await open_board(client, issuer)
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "WWW-Authenticate" not in refused.headers
    state = await jwks_check(client)
    assert state.startswith("degraded: JWKS unavailable since"), state
    assert "no keys" in state
    metrics = (await client.get("/metrics")).text
    assert 'jwks_refresh_failures_total{service="board"}' in metrics

    await proxy.restore()

    async def opened() -> bool:
        return (await open_board(client, issuer)).status_code == 201

    await wait_for(opened, timeout=10, message="a board opened once the JWKS is back")
    assert await jwks_check(client) == "up"

    # The JWKS goes away again; the keys in hand keep working past their cache time.
    await proxy.cut()
    fetched = server.requests
    await asyncio.sleep(0.6)  # past JWKS_CACHE_SECONDS

    async def failing() -> bool:
        response = await open_board(client, issuer)
        assert response.status_code == 201, response.text
        return (await jwks_check(client)).startswith("degraded:")

    await wait_for(failing, timeout=10, message="the failed background refetch")
    for _ in range(5):
        response = await open_board(client, issuer)
        assert response.status_code == 201, response.text
    state = await jwks_check(client)
    assert "using keys fetched at" in state, state
    assert server.requests == fetched  # cut: nothing reached the issuer

    # A key the verifier has never seen cannot be looked up now: 503, not 401.
    rotated = await open_board(client, TokenIssuer())
    assert rotated.status_code == 503, rotated.text
