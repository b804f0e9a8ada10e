"""Readiness means "can serve": every api process as its composition root builds it, with Redis and PostgreSQL each behind a TCP proxy that is cut.

Redis is a dependency each api degrades around (rate limits, the token deny-list, caches,
counters, login throttles, fault flags), so with Redis cut ``/readyz`` stays 200 with
``"redis": "degraded: ..."`` and a normal request gets its normal answer. PostgreSQL is one none
of them can serve without: with it cut ``/readyz`` is 503, and 200 again once it is back
(docs/CONVENTIONS.md "Degraded dependencies"). A *silent* Redis (accepting connections, never
answering) must not slow ``/readyz`` past the probe's timeout, and a request that needs a
dependency that is down gets the 503 problem, not a 500.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from prometheus_client import REGISTRY

import board.bootstrap
import board.config
import board.entrypoints.api
import gateway.bootstrap
import gateway.config
import member.bootstrap
import member.config
import qna.bootstrap
import qna.config
import saga.bootstrap
import saga.cli
import saga.config
from chassis.auth import JwksVerifier
from chassis.migrations import upgrade
from tests.support.infra import Infra, wait_for
from tests.support.jwks_server import JwksServer
from tests.support.processes import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


@dataclass
class Links:
    """The process's way to Redis and to PostgreSQL, each a proxy a test can cut."""

    redis: TcpProxy
    postgres: TcpProxy
    redis_url: str
    database_url: str  # through the proxy
    direct_database_url: str  # to migrate before the process starts


@pytest.fixture
async def links(infra: Infra, database_url: str) -> AsyncIterator[Links]:
    redis = urlsplit(infra.redis_url)
    pg = urlsplit(database_url)
    redis_proxy = await TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start()
    pg_proxy = await TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432).start()
    try:
        yield Links(
            redis_proxy,
            pg_proxy,
            redis_proxy.url(infra.redis_url),
            pg_proxy.url(database_url),
            database_url,
        )
    finally:
        await redis_proxy.close()
        await pg_proxy.close()


def _pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _trusting(app: FastAPI, issuer: TokenIssuer) -> FastAPI:
    """The app's verifier trusts the test issuer instead of fetching member's JWKS."""
    app.state.verifier = JwksVerifier(issuer.fetch, issuer="msa-member", audience="msa")
    return app


async def _migrated(root: Path, links: Links) -> None:
    await asyncio.to_thread(upgrade, root, links.direct_database_url)


async def member_api(links: Links, issuer: TokenIssuer) -> FastAPI:
    await _migrated(member.config.SERVICE_ROOT, links)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return member.bootstrap.build_api(
        member.config.Settings(
            DATABASE_URL=links.database_url,
            REDIS_URL=links.redis_url,
            REDIS_KEY_PREFIX=f"{prefix}member:",
            KAFKA_TOPIC_PREFIX=prefix,
            JWT_PRIVATE_KEY=_pem(),
            DATABASE_POOL_SIZE=2,
        )
    )


async def member_request(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    """Sign up, then log in: the login reserves its attempt in the throttle (Redis)."""
    email = f"r-{uuid.uuid4().hex[:10]}@example.com"
    nickname = f"r{uuid.uuid4().hex[:8]}"
    signed_up = await client.post(
        "/api/members", json={"email": email, "password": PASSWORD, "nickname": nickname}
    )
    assert signed_up.status_code == 201, signed_up.text
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["access_token"]


async def board_api(links: Links, issuer: TokenIssuer) -> FastAPI:
    await _migrated(board.config.SERVICE_ROOT, links)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return _trusting(
        board.bootstrap.build_api(
            board.config.Settings(
                DATABASE_URL=links.database_url,
                REDIS_URL=links.redis_url,
                REDIS_KEY_PREFIX=f"{prefix}board:",
                KAFKA_TOPIC_PREFIX=prefix,
                FIRST_PAGE_CACHE_SECONDS=30,
                DATABASE_POOL_SIZE=2,
            )
        ),
        issuer,
    )


async def board_request(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    """Write a post, read a board's first page (the cache) and the post (the view counter)."""
    boards = await client.get("/api/boards")
    assert boards.status_code == 200, boards.text
    free = next(b["id"] for b in boards.json() if b["slug"] == "free")
    written = await client.post(
        f"/api/boards/{free}/posts",
        json={"title": "레디스 없이", "content": "본문"},
        headers=issuer.headers(uuid.uuid4()),
    )
    assert written.status_code == 201, written.text
    page = await client.get(f"/api/boards/{free}/posts")
    assert page.status_code == 200, page.text
    read = await client.get(f"/api/posts/{written.json()['id']}")
    assert read.status_code == 200, read.text


async def qna_api(links: Links, issuer: TokenIssuer) -> FastAPI:
    await _migrated(qna.config.SERVICE_ROOT, links)
    return _trusting(
        qna.bootstrap.build_api(
            qna.config.Settings(
                DATABASE_URL=links.database_url,
                REDIS_URL=links.redis_url,
                KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
                DATABASE_POOL_SIZE=2,
            )
        ),
        issuer,
    )


async def qna_request(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    listed = await client.get("/api/questions")
    assert listed.status_code == 200, listed.text


async def saga_api(links: Links, issuer: TokenIssuer) -> FastAPI:
    await _migrated(saga.cli.SERVICE_ROOT, links)
    return _trusting(
        saga.bootstrap.build_api(
            saga.config.Settings(
                DATABASE_URL=links.database_url,
                REDIS_URL=links.redis_url,
                KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
                # the admin routes answer; nothing here sets a flag
                FAULT_INJECTION=True,
                DATABASE_POOL_SIZE=2,
            )
        ),
        issuer,
    )


async def saga_request(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    """Start a withdrawal and read it back."""
    headers = issuer.headers(uuid.uuid4())
    started = await client.delete("/api/members/me", headers=headers)
    assert started.status_code == 202, started.text
    shown = await client.get(started.headers["Location"], headers=headers)
    assert shown.status_code == 200, shown.text


Build = Callable[[Links, TokenIssuer], Awaitable[FastAPI]]
Request = Callable[[httpx.AsyncClient, TokenIssuer], Awaitable[None]]

SERVICES: dict[str, tuple[Build, Request, bool]] = {
    # name: (build, a normal request, whether the api uses Redis at all)
    "member": (member_api, member_request, True),
    "board": (board_api, board_request, True),
    "qna": (qna_api, qna_request, False),
    "saga": (saga_api, saga_request, True),
}


#: A request that needs the database, per service: (method, path, JSON body, needs a token).
READS: dict[str, tuple[str, str, dict[str, str] | None, bool]] = {
    "member": ("POST", "/api/auth/login", {"email": "a@example.com", "password": PASSWORD}, False),
    "board": ("GET", "/api/boards", None, False),
    "qna": ("GET", "/api/questions", None, False),
    "saga": ("GET", f"/api/sagas/{uuid.uuid4()}", None, True),
}


async def _running(stack: AsyncExitStack, app: FastAPI) -> httpx.AsyncClient:
    await stack.enter_async_context(app.router.lifespan_context(app))
    return await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    )


def _dependency_up(service: str, dependency: str) -> float | None:
    return REGISTRY.get_sample_value(
        "dependency_up", {"service": service, "dependency": dependency}
    )


def _bypassed(service: str, operation: str) -> float:
    value = REGISTRY.get_sample_value(
        "degraded_dependency_failures_total",
        {"service": service, "dependency": "redis", "operation": operation},
    )
    return value or 0.0


@pytest.mark.parametrize("service", list(SERVICES))
async def test_with_redis_cut_the_api_is_ready_degraded_and_serves(
    service: str, links: Links, issuer: TokenIssuer
) -> None:
    build, request, uses_redis = SERVICES[service]
    app = await build(links, issuer)
    async with AsyncExitStack() as stack:
        client = await _running(stack, app)
        await request(client, issuer)  # warm: pooled connections to Redis exist now
        await links.redis.cut()

        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["postgres"] == "up"
        if uses_redis:
            assert checks["redis"].startswith("degraded:"), checks
            assert _dependency_up(service, "redis") == 0
        else:
            assert "redis" not in checks
        await request(client, issuer)

        await links.redis.restore()
        if uses_redis:
            await wait_for(
                lambda: _ready_with(client, "redis", "up"), timeout=10, message="redis up again"
            )


#: ``timeoutSeconds`` of every readiness probe (deploy/k8s/base/*/*.yaml, docker-compose.yml):
#: an answer slower than this is a failed probe, whatever it says.
PROBE_TIMEOUT_SECONDS = 2.0
#: The gateway's default ``UPSTREAM_TIMEOUT_SECONDS``: an answer slower than this never reaches
#: a client through the gateway (504).
UPSTREAM_TIMEOUT_SECONDS = gateway.config.Settings.model_fields["UPSTREAM_TIMEOUT_SECONDS"].default


class _Timed(httpx.AsyncClient):
    """The app's client that remembers its slowest request (seconds)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__(transport=client._transport, base_url=client.base_url)
        self.slowest = 0.0

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            return await super().send(request, **kwargs)
        finally:
            self.slowest = max(self.slowest, loop.time() - start)


async def _timed_readyz(client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    response = await client.get("/readyz")
    return response, loop.time() - start


@pytest.mark.parametrize("service", [s for s, (_, _, uses_redis) in SERVICES.items() if uses_redis])
async def test_with_redis_silent_the_api_answers_ready_within_the_probe_timeout_and_serves(
    service: str, links: Links, issuer: TokenIssuer
) -> None:
    """A Redis that accepts connections and never answers (a hung server, dropped packets) is
    the slow kind of outage: each Redis call waits for its timeout, so ``/readyz`` must answer
    before the probe gives up, and each request path must bound its own wait."""
    build, request, _ = SERVICES[service]
    app = await build(links, issuer)
    async with AsyncExitStack() as stack:
        client = await _running(stack, app)
        await request(client, issuer)
        await links.redis.stall()

        ready, took = await _timed_readyz(client)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["redis"].startswith("degraded:")
        assert took < PROBE_TIMEOUT_SECONDS * 0.75, f"/readyz took {took:.2f} s"
        timed = _Timed(client)
        await request(timed, issuer)
        assert timed.slowest < UPSTREAM_TIMEOUT_SECONDS, f"a request took {timed.slowest:.2f} s"


async def test_with_redis_silent_a_board_post_read_waits_for_redis_no_longer_than_a_list_read(
    links: Links, issuer: TokenIssuer
) -> None:
    """The view counter is bounded like the first-page cache (``CACHE_TIMEOUT_SECONDS``), not by
    the Redis client's whole reply timeout: a silent Redis costs each post read at most that."""
    app = await board_api(links, issuer)
    async with AsyncExitStack() as stack:
        client = await _running(stack, app)
        free = next(
            b["id"] for b in (await client.get("/api/boards")).json() if b["slug"] == "free"
        )
        written = await client.post(
            f"/api/boards/{free}/posts",
            json={"title": "조용한 레디스", "content": "본문"},
            headers=issuer.headers(uuid.uuid4()),
        )
        assert (await client.get(f"/api/posts/{written.json()['id']}")).status_code == 200
        await links.redis.stall()
        timed = _Timed(client)
        read = await timed.get(f"/api/posts/{written.json()['id']}")
        assert read.status_code == 200, read.text
        assert timed.slowest < board.entrypoints.api.CACHE_TIMEOUT_SECONDS + 0.4, timed.slowest


async def test_with_redis_cut_the_saga_fault_flags_answer_503_and_the_api_stays_ready(
    links: Links, issuer: TokenIssuer
) -> None:
    """The fault flags live in Redis alone: their admin routes cannot degrade, so they say a
    dependency is unavailable (503), and the api, whose purpose is sagas, stays ready."""
    app = await saga_api(links, issuer)
    async with AsyncExitStack() as stack:
        client = await _running(stack, app)
        admin = issuer.headers(uuid.uuid4(), role="ADMIN")
        await links.redis.cut()
        flags = await client.get("/api/admin/faults", headers=admin)
        assert flags.status_code == 503, flags.text
        assert flags.headers["content-type"] == "application/problem+json"
        assert (await client.get("/readyz")).status_code == 200


async def _ready_with(client: httpx.AsyncClient, name: str, state: str) -> bool:
    ready = await client.get("/readyz")
    return ready.status_code == 200 and ready.json()["checks"].get(name) == state


@pytest.mark.parametrize("service", list(SERVICES))
async def test_with_postgres_cut_the_api_is_not_ready_until_it_is_back(
    service: str, links: Links, issuer: TokenIssuer
) -> None:
    build, request, _ = SERVICES[service]
    app = await build(links, issuer)
    async with AsyncExitStack() as stack:
        client = await _running(stack, app)
        await request(client, issuer)
        await links.postgres.cut()

        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["postgres"].startswith("down:")
        assert _dependency_up(service, "postgres") == 0
        # a request that needs the database is told a dependency is unavailable, not a bug
        method, path, body, needs_token = READS[service]
        refused = await client.request(
            method, path, json=body, headers=issuer.headers(uuid.uuid4()) if needs_token else None
        )
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"

        await links.postgres.restore()
        await wait_for(
            lambda: _ready_with(client, "postgres", "up"), timeout=10, message="postgres up again"
        )
        await request(client, issuer)


# --- the gateway: no database; Redis holds its rate limits and the token deny-list ------------


def _gateway_settings(infra: Infra, redis: TcpProxy, jwks: JwksServer) -> gateway.config.Settings:
    nowhere = f"http://127.0.0.1:{free_port()}"  # the dashboard's parts degrade; it still answers
    return gateway.config.Settings(
        MEMBER_URL=nowhere,
        BOARD_URL=nowhere,
        QNA_URL=nowhere,
        SAGA_URL=nowhere,
        JWKS_URL=jwks.url,
        REDIS_URL=redis.url(infra.redis_url),
        RATE_LIMIT_PER_MINUTE=1000,  # counted in Redis
        RATE_LIMIT_KEY_PREFIX=f"test:{uuid.uuid4().hex[:10]}:ratelimit:",
        TOKEN_CACHE_SECONDS=0,  # every request reads the deny-list
    )


async def test_with_redis_cut_the_gateway_is_ready_degraded_and_serves(
    infra: Infra, issuer: TokenIssuer
) -> None:
    redis = urlsplit(infra.redis_url)
    proxy = await TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start()
    jwks = await JwksServer(issuer).start()
    app = gateway.bootstrap.build_api(_gateway_settings(infra, proxy, jwks))
    async with AsyncExitStack() as stack:
        stack.push_async_callback(jwks.stop)
        stack.push_async_callback(proxy.close)
        client = await _running(stack, app)
        headers = issuer.headers(uuid.uuid4())
        assert (await client.get("/api/me/dashboard", headers=headers)).status_code == 200
        await proxy.cut()
        before = {op: _bypassed("gateway", op) for op in ("rate_limit", "token_denylist")}

        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["redis"].startswith("degraded:")
        assert _dependency_up("gateway", "redis") == 0
        # another member: the deny-list answer for the first one is remembered for a second
        dashboard = await client.get("/api/me/dashboard", headers=issuer.headers(uuid.uuid4()))
        assert dashboard.status_code == 200, dashboard.text
        # each bypassed call is counted where every process counts them
        assert all(_bypassed("gateway", op) > before[op] for op in before)


async def test_with_redis_silent_the_gateway_answers_ready_within_the_probe_timeout_and_serves(
    infra: Infra, issuer: TokenIssuer
) -> None:
    redis = urlsplit(infra.redis_url)
    proxy = await TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start()
    jwks = await JwksServer(issuer).start()
    app = gateway.bootstrap.build_api(_gateway_settings(infra, proxy, jwks))
    async with AsyncExitStack() as stack:
        stack.push_async_callback(jwks.stop)
        stack.push_async_callback(proxy.close)
        client = await _running(stack, app)
        headers = issuer.headers(uuid.uuid4())
        assert (await client.get("/api/me/dashboard", headers=headers)).status_code == 200
        await proxy.stall()

        ready, took = await _timed_readyz(client)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["redis"].startswith("degraded:")
        assert took < PROBE_TIMEOUT_SECONDS * 0.75, f"/readyz took {took:.2f} s"
        timed = _Timed(client)
        dashboard = await timed.get("/api/me/dashboard", headers=headers)
        assert dashboard.status_code == 200, dashboard.text
        assert timed.slowest < UPSTREAM_TIMEOUT_SECONDS, timed.slowest
