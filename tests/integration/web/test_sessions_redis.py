"""The BFF session store on the real Redis: keys and TTLs, the compare-and-set refresh across replicas, and a Redis cut by a TCP proxy (guests read, writes fail closed, web stays ready)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from chassis.redis import create_redis
from tests.support.infra import Infra
from tests.support.tcp_proxy import TcpProxy
from tests.unit.web.fakes import Call, FakeGateway, TokenMint, member_body, ok
from web.adapters.session_records import RecordsUnavailable, RedisSessionRecords
from web.bootstrap import build_api
from web.config import Settings
from web.sessions import SESSION_COOKIE, SessionStore, session_key

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:web:"


@pytest.fixture
def settings(infra: Infra, prefix: str) -> Settings:
    return Settings(REDIS_URL=infra.redis_url, WEB_REDIS_KEY_PREFIX=prefix)


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


def stores(
    redis: Redis, settings: Settings, gateway: FakeGateway, replicas: int = 1
) -> list[SessionStore]:
    """One store per replica: each has its own in-process single-flight, all share Redis."""
    return [
        SessionStore(
            RedisSessionRecords(redis, prefix=settings.WEB_REDIS_KEY_PREFIX), gateway, settings
        )
        for _ in range(replicas)
    ]


async def test_a_session_round_trips_under_its_hashed_key_with_its_ttls(
    redis: Redis, settings: Settings, gateway: FakeGateway, prefix: str
) -> None:
    (store,) = stores(redis, settings, gateway)
    guest_cookie, guest = await store.start_guest()
    guest_key = f"{prefix}session:{session_key(guest_cookie)}"
    assert 0 < await redis.ttl(guest_key) <= settings.ANON_SESSION_SECONDS
    me = member_body("alice", role="ADMIN")
    cookie, session = await store.sign_in(guest, TokenMint().pair(), me)
    key = f"{prefix}session:{session_key(cookie)}"
    assert await redis.exists(guest_key) == 0  # the guest session id is not reused
    assert (
        settings.SESSION_IDLE_SECONDS - 5 <= await redis.ttl(key) <= settings.SESSION_IDLE_SECONDS
    )
    stored = await redis.hgetall(key)
    assert cookie not in str(stored)  # only the cookie's hash names the record
    loaded = await store.load(cookie)
    assert loaded == session
    assert loaded is not None
    assert loaded.is_admin
    assert loaded.signed_in
    assert loaded.nickname == "alice"
    await store.flash(session, "saved", "ok")
    taken = await store.take_flash(session)
    assert taken is not None
    assert (taken.text, taken.kind) == ("saved", "ok")
    assert await store.take_flash(session) is None  # one-shot
    await store.end(session)
    assert await store.load(cookie) is None


async def test_an_idle_ttl_never_outlives_the_maximum_age(
    redis: Redis, infra: Infra, prefix: str, gateway: FakeGateway
) -> None:
    settings = Settings(
        REDIS_URL=infra.redis_url,
        WEB_REDIS_KEY_PREFIX=prefix,
        SESSION_IDLE_SECONDS=7200,
        SESSION_MAX_AGE_SECONDS=3600,
    )
    (store,) = stores(redis, settings, gateway)
    cookie, _ = await store.sign_in(None, TokenMint().pair(), member_body())
    assert 3590 <= await redis.ttl(f"{prefix}session:{session_key(cookie)}") <= 3600


async def test_two_replicas_refreshing_one_session_at_once_spend_the_refresh_token_once(
    redis: Redis, settings: Settings, gateway: FakeGateway, prefix: str
) -> None:
    """The Redis lock and the compare-and-set: 3 replicas x 10 requests, one refresh; the
    family is not revoked (a second use of the refresh token would revoke it)."""
    mint = TokenMint(expires_in=10)  # inside the 30 s margin: every request wants a refresh

    async def refresh(call: Call) -> Any:
        await asyncio.sleep(0.2)  # long enough for every replica to meet the lock
        return ok(mint.refresh(call.json["refresh_token"]))

    gateway.on("POST /api/auth/refresh", refresh)
    replicas = stores(redis, settings, gateway, replicas=3)
    cookie, session = await replicas[0].sign_in(None, mint.pair(), member_body())
    mint.expires_in = 900
    results = await asyncio.gather(*(r.fresh(session) for r in replicas for _ in range(10)))
    assert mint.refreshes == 1
    assert not mint.revoked
    assert {s.access_token for s in results} == {"access-2"}
    stored = await redis.hgetall(f"{prefix}session:{session_key(cookie)}")
    assert stored["refresh_token"] == "refresh-2"
    assert await redis.exists(f"{prefix}refresh-lock:{session_key(cookie)}") == 0


async def test_the_compare_and_set_keeps_a_newer_pair(
    redis: Redis, settings: Settings, gateway: FakeGateway
) -> None:
    records = RedisSessionRecords(redis, prefix=settings.WEB_REDIS_KEY_PREFIX)
    h = uuid.uuid4().hex
    await records.save(h, {"csrf": "c", "refresh_token": "r2", "access_token": "a2"}, 60)
    assert not await records.swap_tokens(h, "r1", {"refresh_token": "r1b", "access_token": "x"})
    assert (await records.load(h) or {})["refresh_token"] == "r2"
    assert await records.swap_tokens(h, "r2", {"refresh_token": "r3", "access_token": "a3"})
    assert (await records.load(h) or {})["access_token"] == "a3"
    assert await records.lock(h, "one", 10_000)
    assert not await records.lock(h, "two", 10_000)
    await records.unlock(h, "two")  # not the holder: nothing happens
    assert not await records.lock(h, "three", 10_000)
    await records.unlock(h, "one")
    assert await records.lock(h, "three", 10_000)
    await records.delete(h)
    assert not await records.update(h, {"nickname": "x"})  # a deleted session stays deleted
    assert await records.load(h) is None


# -- Redis cut ----------------------------------------------------------------------------


@pytest.fixture
async def proxy(infra: Infra) -> AsyncIterator[TcpProxy]:
    target = urlsplit(infra.redis_url)
    started = await TcpProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    yield started
    await started.close()


def degraded_count(operation: str) -> float:
    value = REGISTRY.get_sample_value(
        "degraded_dependency_failures_total",
        {"service": "web", "dependency": "redis", "operation": operation},
    )
    return value or 0.0


async def test_every_redis_call_is_bounded_and_counted(proxy: TcpProxy, infra: Infra) -> None:
    client = create_redis(proxy.url(infra.redis_url))
    records = RedisSessionRecords(client, prefix=f"test:{uuid.uuid4().hex[:8]}:")
    try:
        await records.ping()
        await proxy.stall()  # Redis silent: the worst case, no error to fail fast on
        before = degraded_count("session_load")
        started = time.perf_counter()
        with pytest.raises(RecordsUnavailable):
            await records.load("x")
        assert time.perf_counter() - started < 0.9
        assert degraded_count("session_load") == before + 1
    finally:
        await proxy.restore()
        await client.aclose()


async def test_with_redis_cut_guests_read_posts_fail_closed_and_web_stays_ready(
    proxy: TcpProxy, infra: Infra, prefix: str
) -> None:
    gateway = FakeGateway()
    mint = TokenMint()
    me = member_body("alice")
    gateway.on("POST /api/auth/login", lambda call: ok(mint.pair()))
    gateway.on("GET /api/members/me", ok(me))
    gateway.on("POST /api/auth/logout", ok(None, 204))
    gateway.on("GET /api/me/dashboard", ok({"member": me, "degraded": []}))
    settings = Settings(REDIS_URL=proxy.url(infra.redis_url), WEB_REDIS_KEY_PREFIX=prefix)
    app = build_api(settings, gateway)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://web.test") as client,
    ):
        form = await client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = await client.post(
            "/login",
            data={"csrf_token": csrf.group(1), "email": "alice@example.com", "password": "pw"},
        )
        assert signed.status_code == 303
        cookie = client.cookies[SESSION_COOKIE]
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/")).text)
        assert token is not None
        calls = len(gateway.calls)

        await proxy.cut()
        before = degraded_count("session_load")
        home = await client.get("/", headers={"Accept-Language": "en"})
        assert home.status_code == 200
        assert "Sign-in is temporarily unavailable" in home.text
        assert degraded_count("session_load") > before
        guest = await client.get("/", cookies={}, headers={"Accept-Language": "en"})
        assert guest.status_code == 200
        member_page = await client.get("/me", headers={"Accept-Language": "en"})
        assert member_page.status_code == 200
        assert "Sign-in is temporarily unavailable" in member_page.text
        posted = await client.post(
            "/account/profile",
            data={"csrf_token": token.group(1), "nickname": "bob"},
            headers={"Accept-Language": "en"},
        )
        assert posted.status_code == 200
        assert "Sign-in is temporarily unavailable" in posted.text
        assert len(gateway.calls) == calls  # nothing reached the API
        assert client.cookies[SESSION_COOKIE] == cookie  # kept for when Redis is back
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"].startswith("degraded")

        await proxy.restore()
        back = await client.get("/me", headers={"Accept-Language": "en"})
        assert back.status_code == 200
        assert "Sign-in is temporarily unavailable" not in back.text
        assert '<span class="who">alice</span>' in back.text

        # logging out never leaves the member stuck signed in: with Redis cut again, the
        # cookie goes and the page says the server's session ends by itself
        await proxy.cut()
        out = await client.post(
            "/logout", data={"csrf_token": token.group(1)}, headers={"Accept-Language": "en"}
        )
        assert out.status_code == 303
        assert out.headers["location"] == "/?notice=logged-out-offline"
        assert SESSION_COOKIE not in client.cookies
        said = await client.get(out.headers["location"], headers={"Accept-Language": "en"})
        assert "You are logged out in this browser" in said.text
        assert 'action="/logout"' not in said.text
