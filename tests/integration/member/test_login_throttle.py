"""Password-check throttling under concurrency, against real PostgreSQL and Redis: every attempt is reserved before the hash check.

Each test here guards against a check-then-act race on a limit: reading the count before the
slow argon2 check and writing it after lets any number of simultaneous attempts through. The
hash checks are counted by wrapping the api's real ``PasswordHasher`` (argon2).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest

from member.adapters.passwords import Argon2Passwords
from member.bootstrap import build_api
from member.config import Settings
from tests.integration.member.helpers import (
    PASSWORD,
    bearer,
    log_in,
    sign_up,
    unique_email,
    unique_nickname,
)
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

ATTEMPTS = 30
LIMIT = 5  # docs/services/member.md: after 5 failures in a minute the next attempt gets 429


class CountingPasswords:
    """The real argon2 hasher, counting the password checks it runs."""

    def __init__(self, real: Argon2Passwords) -> None:
        self.real = real
        self.checks = 0

    async def hash(self, password: str) -> str:
        return await self.real.hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.checks += 1
        return await self.real.verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.real.needs_rehash(password_hash)


Client = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[CountingPasswords, Client]]:
    """The member api with its hasher counted; ``client(address)`` calls it from that address."""
    app = build_api(settings)
    counting = CountingPasswords(app.state.passwords)
    app.state.passwords = counting

    @asynccontextmanager
    async def client(address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http

    async with app.router.lifespan_context(app):
        yield counting, client


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def wrong_logins(http: httpx.AsyncClient, email: str, n: int) -> list[httpx.Response]:
    body = {"email": email, "password": "wrong password"}
    return list(await asyncio.gather(*(http.post("/api/auth/login", json=body) for _ in range(n))))


async def test_parallel_wrong_logins_for_one_email_get_exactly_five_hash_checks(
    settings: Settings,
) -> None:
    """A check-then-act race on a limit: 30 simultaneous wrong logins for one email must not
    all pass a count read before the hash check. Exactly 5 are checked (401), 25 are refused
    before hashing (429 with Retry-After), and the right password is refused too until the
    window ends."""
    async with running(settings) as (counting, client), client("127.0.0.1") as http:
        member = await sign_up(http)
        responses = await wrong_logins(http, member["email"], ATTEMPTS)

        codes = sorted(r.status_code for r in responses)
        assert counting.checks == LIMIT
        assert codes == [401] * LIMIT + [429] * (ATTEMPTS - LIMIT)
        for response in responses:
            if response.status_code == 429:
                assert_throttled(response)
        right = {"email": member["email"], "password": PASSWORD}
        assert_throttled(await http.post("/api/auth/login", json=right))
        assert counting.checks == LIMIT


async def test_a_success_clears_the_count_and_keeps_the_contract(settings: Settings) -> None:
    """After 4 failures the right password still logs in and clears the count; 5 failures in
    a row then lock the email (the 6th attempt is 429, docs/services/member.md)."""
    async with running(settings) as (counting, client), client("127.0.0.1") as http:
        member = await sign_up(http)
        assert [r.status_code for r in await wrong_logins(http, member["email"], 4)] == [401] * 4
        await log_in(http, member["email"])
        codes = [(await wrong_logins(http, member["email"], 1))[0].status_code for _ in range(5)]
        assert codes == [401] * 5
        assert_throttled((await wrong_logins(http, member["email"], 1))[0])
        assert counting.checks == 4 + 1 + 5


async def test_parallel_wrong_current_passwords_get_at_most_five_hash_checks(
    settings: Settings,
) -> None:
    """A check-then-act race on a limit, through ``PATCH /api/members/me``: a stolen access
    token must not let 30 simultaneous ``current_password`` guesses all be checked."""
    async with running(settings) as (counting, client), client("127.0.0.1") as http:
        member = await sign_up(http)
        token = (await log_in(http, member["email"]))["access_token"]
        checks_before = counting.checks
        body = {"password": "brand-new-password", "current_password": "wrong password"}
        responses = await asyncio.gather(
            *(
                http.patch("/api/members/me", json=body, headers=bearer(token))
                for _ in range(ATTEMPTS)
            )
        )

        assert counting.checks - checks_before <= LIMIT
        codes = sorted(r.status_code for r in responses)
        assert codes == [403] * LIMIT + [429] * (ATTEMPTS - LIMIT)
        for response in responses:
            if response.status_code == 429:
                assert_throttled(response)
        right = {"password": "brand-new-password", "current_password": PASSWORD}
        assert_throttled(await http.patch("/api/members/me", json=right, headers=bearer(token)))


async def test_logins_are_limited_per_client_address(settings: Settings) -> None:
    """One address cannot spread guesses over many emails: past LOGIN_PER_ADDRESS_PER_MINUTE
    its logins get 429 (problem+json, Retry-After), counted atomically even when they arrive at
    once, while another address is unaffected."""
    limited = settings.model_copy(update={"LOGIN_PER_ADDRESS_PER_MINUTE": 3})
    async with running(limited) as (counting, client):
        async with client("203.0.113.7") as attacker:
            responses = await asyncio.gather(
                *(
                    attacker.post(
                        "/api/auth/login", json={"email": unique_email(), "password": "wrong pw"}
                    )
                    for _ in range(10)
                )
            )
        codes = sorted(r.status_code for r in responses)
        assert codes == [401] * 3 + [429] * 7
        for response in responses:
            if response.status_code == 429:
                assert_throttled(response)
        assert counting.checks == 3
        async with client("198.51.100.9") as other:
            wrong = {"email": unique_email(), "password": "wrong pw"}
            assert (await other.post("/api/auth/login", json=wrong)).status_code == 401


async def test_sign_ups_are_limited_per_client_address(settings: Settings) -> None:
    """Past SIGN_UP_PER_ADDRESS_PER_MINUTE one address's sign-ups get 429 (problem+json,
    Retry-After), however many arrive at once; another address still signs up."""
    limited = settings.model_copy(update={"SIGN_UP_PER_ADDRESS_PER_MINUTE": 2})
    async with running(limited) as (_, client):
        async with client("203.0.113.8") as flooder:
            responses = await asyncio.gather(
                *(
                    flooder.post(
                        "/api/members",
                        json={
                            "email": unique_email(),
                            "password": PASSWORD,
                            "nickname": unique_nickname(),
                        },
                    )
                    for _ in range(8)
                )
            )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * 2 + [429] * 6
        for response in responses:
            if response.status_code == 429:
                assert_throttled(response)
        async with client("198.51.100.10") as other:
            await sign_up(other)


async def test_with_redis_cut_the_local_fallback_still_reserves_atomically(
    settings: Settings,
) -> None:
    """Redis is cut (a TCP proxy in front of the shared Redis, the server untouched): each
    replica's in-memory fallback still reserves before the hash check, so 30 simultaneous
    wrong logins get exactly 5 checks, and the limit per address still holds; another email
    still logs in."""
    redis = urlsplit(settings.REDIS_URL)
    proxy = await TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start()
    limited = settings.model_copy(
        update={"REDIS_URL": proxy.url(settings.REDIS_URL), "SIGN_UP_PER_ADDRESS_PER_MINUTE": 3}
    )
    try:
        async with running(limited) as (counting, client), client("127.0.0.1") as http:
            victim = await sign_up(http)
            bystander = await sign_up(http)
            await proxy.cut()

            responses = await wrong_logins(http, victim["email"], ATTEMPTS)
            codes = sorted(r.status_code for r in responses)
            assert counting.checks == LIMIT
            assert codes == [401] * LIMIT + [429] * (ATTEMPTS - LIMIT)
            await log_in(http, bystander["email"])

            # The two sign-ups above were counted in Redis; this replica now counts anew.
            def new_member() -> dict[str, str]:
                return {
                    "email": unique_email(),
                    "password": PASSWORD,
                    "nickname": unique_nickname(),
                }

            signed = await asyncio.gather(
                *(http.post("/api/members", json=new_member()) for _ in range(5))
            )
            assert sorted(r.status_code for r in signed) == [201] * 3 + [429] * 2
    finally:
        await proxy.close()
