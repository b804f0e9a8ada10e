"""No client can deny service to another, through a real gateway process (docs/CONVENTIONS.md "Fairness").

Kind: one client's requests degrade another's.

- A burst of requests that each provoke a 500 (the login with a NUL byte of issue 12) must not
  open the member breaker: every other client gets exactly what it gets without the burst.
- A client cannot choose its own rate-limit bucket by sending ``X-Forwarded-For``: the gateway
  trusts no proxy by default, counts the TCP peer, and tells the service that address.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.infra import Infra
from tests.support.processes import ServiceProcess
from tests.support.tokens import TokenIssuer

from .conftest import gateway_process, metric, start_all, stop_all, url

pytestmark = pytest.mark.system

#: The production defaults of the breaker (the shared test gateway raises the threshold).
BREAKER_THRESHOLD = 5
BURST = 40
LIMIT = 3

#: What PostgreSQL cannot store: the echo member answers this body with a 500.
NUL_LOGIN = b'{"email": "a\\u0000@x.io", "password": "12345678"}'


@pytest.fixture(scope="module")
def fair_gateway(echo_urls: dict[str, str], infra: Infra) -> Iterator[ServiceProcess]:
    """The shipped breaker settings; FORWARDED_ALLOW_IPS left at its default (no one)."""
    process = gateway_process(
        echo_urls,
        infra.redis_url,
        BREAKER_FAILURE_THRESHOLD=str(BREAKER_THRESHOLD),
        BREAKER_RESET_SECONDS="10",
    )
    try:
        start_all(process)
        yield process
    finally:
        stop_all(process)


@pytest.fixture(scope="module")
def limited_gateway(echo_urls: dict[str, str], infra: Infra) -> Iterator[ServiceProcess]:
    process = gateway_process(echo_urls, infra.redis_url, RATE_LIMIT_PER_MINUTE=str(LIMIT))
    try:
        start_all(process)
        yield process
    finally:
        stop_all(process)


async def another_client(client: httpx.AsyncClient, issuer: TokenIssuer) -> list[int]:
    """What an unrelated client does meanwhile: sign up, log in, read its record, read boards."""
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    me = issuer.headers(uuid.uuid4())
    requests = [
        client.post(
            "/api/members", json={"email": email, "password": "password-1", "nickname": "b"}
        ),
        client.post("/api/auth/login", json={"email": email, "password": "password-1"}),
        client.get("/api/members/me", headers=me),
        client.get("/api/boards"),
    ]
    return [(await request).status_code for request in requests]


async def test_a_burst_of_500s_from_one_client_leaves_another_client_s_results_unchanged(
    fair_gateway: ServiceProcess, issuer: TokenIssuer
) -> None:
    async with (
        httpx.AsyncClient(base_url=url(fair_gateway), timeout=15) as attacker,
        httpx.AsyncClient(base_url=url(fair_gateway), timeout=15) as bystander,
    ):
        baseline = await another_client(bystander, issuer)
        assert baseline == [200, 200, 200, 200]  # the echo answers 200 to everything else

        async def burst() -> list[int]:
            statuses = []
            for _ in range(BURST):
                login = await attacker.post(
                    "/api/auth/login",
                    content=NUL_LOGIN,
                    headers={"Content-Type": "application/json"},
                )
                statuses.append(login.status_code)
            return statuses

        async def meanwhile() -> list[list[int]]:
            return [await another_client(bystander, issuer) for _ in range(5)]

        provoked, during = await asyncio.gather(burst(), meanwhile())
        after = await another_client(bystander, issuer)

    assert provoked == [500] * BURST  # the provoker gets its own answers, as they are
    assert during == [baseline] * 5
    assert after == baseline
    assert await metric(fair_gateway, "gateway_breaker_state", upstream="member") == 0
    # Still visible: every 500 counted per upstream and route.
    provoked_5xx = await metric(
        fair_gateway,
        "gateway_upstream_errors_total",
        upstream="member",
        route="POST /api/auth/login",
        kind="status_5xx",
    )
    assert provoked_5xx == BURST


async def test_a_sick_member_still_opens_the_breaker(
    fair_gateway: ServiceProcess, issuer: TokenIssuer
) -> None:
    """The other half of the rule: 503s (a service that is not serving) still count."""
    async with httpx.AsyncClient(base_url=url(fair_gateway), timeout=15) as client:
        for _ in range(BREAKER_THRESHOLD):
            sick = await client.post(
                "/api/auth/refresh", json={"refresh_token": "x"}, headers={"X-Echo-Status": "503"}
            )
            assert sick.status_code == 503
        refused = await client.post("/api/auth/refresh", json={"refresh_token": "x"})
    assert refused.status_code == 503
    assert refused.json()["detail"] == "member is unavailable (circuit open)"


async def test_a_client_cannot_pick_its_rate_limit_bucket_with_x_forwarded_for(
    limited_gateway: ServiceProcess,
) -> None:
    async with httpx.AsyncClient(base_url=url(limited_gateway), timeout=15) as client:
        statuses = []
        seen = []
        for n in range(LIMIT + 2):
            response = await client.get(
                "/api/boards", headers={"X-Forwarded-For": f"1.2.3.{n + 4}"}
            )
            statuses.append(response.status_code)
            if response.status_code == 200:
                seen.append(response.json())
    assert statuses == [200] * LIMIT + [429, 429]  # one bucket: the loopback peer's
    for echo in seen:
        # The service is told the address the gateway counted, not the client's own chain,
        # and believes it because the gateway (loopback) is the hop it trusts.
        assert echo["headers"]["x-forwarded-for"] == "127.0.0.1"
        assert echo["client"] == "127.0.0.1"
