"""A JWKS outage at the edge (the gateway app as its composition root builds it, real Redis): member's
JWKS behind a TCP proxy that is cut. The kind of fault: an unreachable dependency reported as a
bad token (401), which makes clients throw their tokens away."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from gateway.bootstrap import build_api
from gateway.config import Settings
from tests.support.infra import Infra, wait_for
from tests.support.jwks_server import JwksServer
from tests.support.processes import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(
    infra: Infra, issuer: TokenIssuer
) -> AsyncIterator[tuple[httpx.AsyncClient, TcpProxy]]:
    server = await JwksServer(issuer).start()
    proxy = await TcpProxy("127.0.0.1", server.port).start()
    nowhere = f"http://127.0.0.1:{free_port()}"  # the dashboard's parts degrade; it still answers
    settings = Settings(
        MEMBER_URL=nowhere,
        BOARD_URL=nowhere,
        QNA_URL=nowhere,
        SAGA_URL=nowhere,
        JWKS_URL=f"http://127.0.0.1:{proxy.port}/.well-known/jwks.json",
        JWKS_RETRY_BACKOFF_SECONDS=0.2,
        JWKS_RETRY_BACKOFF_MAX_SECONDS=0.4,
        REDIS_URL=infra.redis_url,
        RATE_LIMIT_KEY_PREFIX=f"test:{uuid.uuid4().hex[:10]}:ratelimit:",
        TOKEN_CACHE_SECONDS=0,  # every request checks its token
    )
    app = build_api(settings)
    async with AsyncExitStack() as exits:
        exits.push_async_callback(server.stop)
        exits.push_async_callback(proxy.close)
        await exits.enter_async_context(app.router.lifespan_context(app))
        client = await exits.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        )
        yield client, proxy


async def test_the_edge_answers_503_without_keys_and_200_with_cached_keys(
    stack: tuple[httpx.AsyncClient, TcpProxy], issuer: TokenIssuer
) -> None:
    client, proxy = stack
    await proxy.cut()
    refused = await client.get("/api/me/dashboard", headers=issuer.headers())
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["jwks"].startswith("degraded: JWKS unavailable since")

    await proxy.restore()

    async def answered() -> bool:
        response = await client.get("/api/me/dashboard", headers=issuer.headers())
        return response.status_code == 200

    await wait_for(answered, timeout=10, message="the dashboard once the JWKS is back")
    await proxy.cut()
    for _ in range(5):
        response = await client.get("/api/me/dashboard", headers=issuer.headers())
        assert response.status_code == 200, response.text
