"""Rate limiting shared by two gateway processes on one Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.infra import Infra
from tests.support.tokens import TokenIssuer

from .conftest import gateway_process, start_all, stop_all, url

pytestmark = pytest.mark.system

LIMIT = 5


@pytest.fixture(scope="module")
def two_gateways(echo_urls: dict[str, str], infra: Infra) -> Iterator[tuple[str, str]]:
    prefix = f"test:{uuid.uuid4().hex[:10]}:ratelimit:"
    settings = {
        "RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "RATE_LIMIT_KEY_PREFIX": prefix,
        # As behind an Ingress controller: the test, on loopback, plays the trusted proxy.
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    first = gateway_process(echo_urls, infra.redis_url, **settings)
    second = gateway_process(echo_urls, infra.redis_url, **settings)
    try:
        start_all(first, second)
        yield url(first), url(second)
    finally:
        stop_all(first, second)


async def statuses(urls: list[str], path: str, headers: dict[str, str]) -> list[httpx.Response]:
    responses = []
    for base in urls:
        async with httpx.AsyncClient(base_url=base, timeout=15) as client:
            responses.append(await client.get(path, headers=headers))
    return responses


async def test_a_user_s_count_is_shared_by_every_gateway(
    two_gateways: tuple[str, str], issuer: TokenIssuer
) -> None:
    first, second = two_gateways
    me = issuer.headers(uuid.uuid4())
    allowed = await statuses([first, second, first, second, first], "/api/members/me", me)
    assert [r.status_code for r in allowed] == [200] * LIMIT
    refused = await statuses([second, first], "/api/members/me", me)
    for response in refused:
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/problem+json"
        assert 1 <= int(response.headers["retry-after"]) <= 60
    # Another user (on a public route too) has a count of their own.
    other = await statuses([second], "/api/boards", issuer.headers(uuid.uuid4()))
    assert other[0].status_code == 200


async def test_anonymous_callers_are_counted_per_client_address(
    two_gateways: tuple[str, str], issuer: TokenIssuer
) -> None:
    first, second = two_gateways
    # The test talks to the gateway over loopback, which these gateways trust as their proxy,
    # so the gateway takes the client address from X-Forwarded-For (the key prefix is this
    # module's own). Without that trust the header is ignored: see test_fairness.py.
    address = {"X-Forwarded-For": "198.51.100.7"}
    spoofed = {**address, "Authorization": f"Bearer {TokenIssuer().token()}"}  # counts as anonymous
    responses = await statuses([first, second, first, second], "/api/boards", address)
    responses += await statuses([second], "/api/members/me", spoofed)  # 401, but counted
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 401]
    refused = await statuses([first], "/api/boards", address)
    assert refused[0].status_code == 429
    assert "retry-after" in refused[0].headers
    elsewhere = await statuses([first], "/api/boards", {"X-Forwarded-For": "203.0.113.9"})
    assert elsewhere[0].status_code == 200
