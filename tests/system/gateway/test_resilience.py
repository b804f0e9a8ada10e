"""Slow and failing upstreams, as real processes: timeouts, retries, pass-through of 5xx, the breaker,
and readiness that does not depend on the upstreams."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.infra import Infra, wait_for
from tests.support.processes import ServiceProcess, free_port
from tests.support.tokens import TokenIssuer

from .conftest import (
    MAX_RESPONSE_BYTES,
    echo_process,
    gateway_process,
    metric,
    start_all,
    stop_all,
    url,
)

pytestmark = pytest.mark.system

TIMEOUT = 1.0  # UPSTREAM_TIMEOUT_SECONDS of the shared gateway


async def errors(gateway: ServiceProcess, route: str, kind: str) -> float:
    value = await metric(
        gateway, "gateway_upstream_errors_total", upstream="board", route=route, kind=kind
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/boards"), ("POST", "/api/auth/refresh")]
)
async def test_a_slow_upstream_gets_504_within_the_route_timeout(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    started = time.monotonic()
    response = await client.request(method, path, headers={"X-Echo-Delay": "5"})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 1.0


async def test_a_5xx_passes_through_and_gets_are_retried(
    client: httpx.AsyncClient, gateway: ServiceProcess
) -> None:
    route = "GET /api/boards"
    before = await errors(gateway, route, "status_5xx")
    response = await client.get("/api/boards", headers={"X-Echo-Status": "503"})
    assert response.status_code == 503
    assert response.json()["upstream"] == "board"  # the upstream's own answer, as it is
    assert await errors(gateway, route, "status_5xx") == before + 3  # UPSTREAM_RETRY_ATTEMPTS


async def test_non_idempotent_requests_are_not_retried(
    client: httpx.AsyncClient, gateway: ServiceProcess, issuer: TokenIssuer
) -> None:
    route = "POST /api/boards"
    before = await errors(gateway, route, "status_5xx")
    response = await client.post(
        "/api/boards", headers={**issuer.headers(), "X-Echo-Status": "503"}, json={}
    )
    assert response.status_code == 503
    assert await errors(gateway, route, "status_5xx") == before + 1


async def test_a_500_is_not_retried(client: httpx.AsyncClient, gateway: ServiceProcess) -> None:
    route = "GET /api/posts"
    before = await errors(gateway, route, "status_5xx")
    response = await client.get("/api/posts", headers={"X-Echo-Status": "500"})
    assert response.status_code == 500
    assert response.json()["upstream"] == "board"
    assert await errors(gateway, route, "status_5xx") == before + 1


# --- circuit breaker: a gateway of its own, in front of a qna upstream the test kills -----------

BREAKER_THRESHOLD = 3
BREAKER_RESET = 1.5


@pytest.fixture(scope="module")
def flaky_qna() -> Iterator[ServiceProcess]:
    process = echo_process("qna")
    try:
        start_all(process)
        yield process
    finally:
        stop_all(process)


@pytest.fixture(scope="module")
def breaker_gateway(
    echo_urls: dict[str, str], flaky_qna: ServiceProcess, infra: Infra
) -> Iterator[ServiceProcess]:
    upstreams = {
        **echo_urls,
        "qna": url(flaky_qna),
        "saga": f"http://127.0.0.1:{free_port()}",  # nothing listens there
    }
    process = gateway_process(
        upstreams,
        infra.redis_url,
        BREAKER_FAILURE_THRESHOLD=str(BREAKER_THRESHOLD),
        BREAKER_RESET_SECONDS=str(BREAKER_RESET),
        UPSTREAM_RETRY_ATTEMPTS="1",  # one request, one attempt: the counts are exact
    )
    try:
        start_all(process)
        yield process
    finally:
        stop_all(process)


async def breaker_state(gateway: ServiceProcess) -> float | None:
    return await metric(gateway, "gateway_breaker_state", upstream="qna")


async def test_a_dead_upstream_opens_its_breaker_which_half_opens_then_closes(
    breaker_gateway: ServiceProcess, flaky_qna: ServiceProcess
) -> None:
    async with httpx.AsyncClient(base_url=url(breaker_gateway), timeout=15) as client:
        assert (await client.get("/api/questions")).status_code == 200
        assert await breaker_state(breaker_gateway) == 0  # closed

        flaky_qna.kill()
        for _ in range(BREAKER_THRESHOLD):
            down = await client.get("/api/questions")
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["detail"] == "qna is unavailable"
        assert await breaker_state(breaker_gateway) == 1  # open

        started = time.monotonic()
        fast = await client.get("/api/questions")
        assert time.monotonic() - started < 0.5  # refused without trying
        assert fast.status_code == 503
        assert fast.json()["detail"] == "qna is unavailable (circuit open)"
        assert 1 <= int(fast.headers["retry-after"]) <= 2
        # Other upstreams are not affected.
        assert (await client.get("/api/boards")).status_code == 200

        # After the reset timeout one trial goes through; it fails: open again.
        async def half_open() -> bool:
            return await breaker_state(breaker_gateway) == 2

        await wait_for(half_open, timeout=10, message="the breaker to half-open")
        assert (await client.get("/api/questions")).json()["detail"] == "qna is unavailable"
        assert await breaker_state(breaker_gateway) == 1

        # The upstream comes back: the next trial succeeds and closes the circuit.
        flaky_qna.start().wait_ready(timeout=60)
        await wait_for(half_open, timeout=10, message="the breaker to half-open again")
        back = await client.get("/api/questions")
        assert back.status_code == 200
        assert back.json()["upstream"] == "qna"
        assert await breaker_state(breaker_gateway) == 0  # closed


async def test_an_oversized_upstream_answer_is_a_502_without_retries_or_breaker_failures(
    client: httpx.AsyncClient, gateway: ServiceProcess
) -> None:
    route = "GET /api/boards"
    before = {k: await errors(gateway, route, k) for k in ("too_large", "transport", "status_5xx")}

    refused = await client.get("/api/boards", headers={"X-Echo-Pad": str(MAX_RESPONSE_BYTES)})

    assert refused.status_code == 502
    assert refused.headers["content-type"] == "application/problem+json"
    assert f"limit {MAX_RESPONSE_BYTES}" in refused.json()["detail"]
    after = {k: await errors(gateway, route, k) for k in before}
    # one attempt (no retry), and nothing the breaker counts as a failure
    assert after == {**before, "too_large": before["too_large"] + 1}
    fits = await client.get("/api/boards", headers={"X-Echo-Pad": str(MAX_RESPONSE_BYTES // 2)})
    assert fits.status_code == 200
    assert len(fits.json()["pad"]) == MAX_RESPONSE_BYTES // 2


async def test_readiness_does_not_depend_on_the_upstreams(
    breaker_gateway: ServiceProcess, issuer: TokenIssuer
) -> None:
    async with httpx.AsyncClient(base_url=url(breaker_gateway), timeout=15) as client:
        # The saga upstream has never been up; the gateway is ready and answers for it.
        assert (await client.get("/readyz")).status_code == 200
        response = await client.get(f"/api/sagas/{uuid.uuid4()}", headers=issuer.headers())
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
