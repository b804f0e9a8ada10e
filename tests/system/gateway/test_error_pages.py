"""Error pages on the wire: the gateway's own refusals and failures on a page path reach the browser
as its bilingual HTML page (``gateway.pages``), with the refusal's status and headers, while the
same refusal on ``/api`` stays a problem document. The kind of fault: an edge answer a browser can
only show as raw JSON."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.infra import Infra
from tests.support.processes import ServiceProcess

from .conftest import gateway_process, start_all, stop_all, url

pytestmark = pytest.mark.system

LIMIT = 3


@pytest.fixture(scope="module")
def strict_gateway(echo_urls: dict[str, str], infra: Infra) -> Iterator[ServiceProcess]:
    """A small rate limit and a short deadline for web's pages. The test, on loopback, plays the
    trusted proxy, so each test is its own client address (``X-Forwarded-For``)."""
    process = gateway_process(
        echo_urls,
        infra.redis_url,
        RATE_LIMIT_PER_MINUTE=str(LIMIT),
        FORWARDED_ALLOW_IPS="127.0.0.1",
        WEB_TIMEOUT_SECONDS="0.5",
    )
    try:
        start_all(process)
        yield process
    finally:
        stop_all(process)


def assert_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.text.startswith("<!doctype html>")
    assert '<section lang="ko">' in response.text
    assert '<section lang="en">' in response.text
    assert '<a href="/">' in response.text
    assert response.headers["x-request-id"] in response.text
    assert "x-echo-upstream" not in response.headers  # the gateway's own answer


async def test_a_rate_limited_page_is_a_page_and_the_api_keeps_its_problem(
    strict_gateway: ServiceProcess,
) -> None:
    address = {"X-Forwarded-For": "198.51.100.21"}
    async with httpx.AsyncClient(base_url=url(strict_gateway), timeout=15) as client:
        for _ in range(LIMIT):
            assert (await client.get("/boards", headers=address)).status_code == 200
        page = await client.get("/boards", headers=address)
        assert_page(page, 429)
        assert 1 <= int(page.headers["retry-after"]) <= 60
        assert f"{page.headers['retry-after']} s" in page.text
        api = await client.get("/api/boards", headers=address)
        assert api.status_code == 429
        assert api.headers["content-type"] == "application/problem+json"
        assert api.json()["status"] == 429


async def test_a_page_web_does_not_build_in_time_is_a_504_page(
    strict_gateway: ServiceProcess,
) -> None:
    address = {"X-Forwarded-For": "198.51.100.22"}
    async with httpx.AsyncClient(base_url=url(strict_gateway), timeout=15) as client:
        slow = {**address, "X-Echo-Delay": "2"}  # web (the echo) answers after 2 s
        assert_page(await client.get("/questions", headers=slow), 504)
        head = await client.head("/questions", headers=slow)
        assert head.status_code == 504
        assert head.headers["content-type"] == "text/html; charset=utf-8"
        assert head.content == b""
