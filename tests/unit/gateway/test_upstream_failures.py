"""What the breaker counts in ``Upstreams.call``: upstream failures, never errors one request provoked.

Kind: one client's requests degrade another's. A 500 that a request provokes while the upstream
answers everyone else must not open the circuit (which would answer every client with 503);
connection errors, timeouts and 502/503/504 still do (docs/CONVENTIONS.md "Fairness").
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from chassis.problems import GatewayTimeout, ServiceUnavailable
from gateway.breaker import BreakerState
from gateway.config import Settings
from gateway.pool import ConnectFailed, ConnectionBroken, UpstreamReply
from gateway.proxy import Upstream, Upstreams

THRESHOLD = 3
PROBLEM = [(b"content-type", b"application/problem+json")]


class ScriptedPool:
    """Stands in for one upstream's ``ConnectionPool``: answers every request with ``status``,
    or raises ``error``, or stays silent for ``delay`` seconds first."""

    def __init__(
        self, status: int = 200, *, error: Exception | None = None, delay: float = 0.0
    ) -> None:
        self.status = status
        self.error = error
        self.delay = delay
        self.calls = 0

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamReply:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return UpstreamReply(self.status, PROBLEM, b"{}")

    async def aclose(self) -> None:
        return None


def upstreams(**overrides: object) -> Upstreams:
    values: dict[str, object] = {
        "BREAKER_FAILURE_THRESHOLD": THRESHOLD,
        "BREAKER_RESET_SECONDS": 60,
        "UPSTREAM_RETRY_ATTEMPTS": 1,
        "UPSTREAM_RETRY_BACKOFF_SECONDS": 0,
        **overrides,
    }
    return Upstreams(Settings(**values))  # type: ignore[arg-type]


def state(upstream: Upstream) -> BreakerState:
    """Read through a call, so mypy does not narrow the property between two reads."""
    return upstream.breaker.state


def member_with(found: Upstreams, pool: object) -> Upstream:
    member = found["member"]
    member.replicas[0].pool = pool  # type: ignore[assignment]
    return member


async def post(found: Upstreams, member: Upstream, timeout: float = 1.0) -> int:
    reply = await found.call(
        member, "POST", "/api/auth/login", [], b"{}", timeout=timeout, route="POST /api/auth/login"
    )
    return reply.status


@pytest.mark.parametrize("status", [500, 501, 505, 400, 404, 409, 422])
async def test_answers_one_request_provoked_never_open_the_circuit(status: int) -> None:
    found = upstreams()
    member = member_with(found, ScriptedPool(status))
    for _ in range(THRESHOLD * 10):
        assert await post(found, member) == status  # passed on as it is
    assert state(member) is BreakerState.CLOSED


async def test_a_500_closes_a_half_open_circuit() -> None:
    """The trial asks whether the upstream answers; a 500 is an answer."""
    found = upstreams(BREAKER_RESET_SECONDS=0.05)
    member = member_with(found, ScriptedPool(503))
    for _ in range(THRESHOLD):
        await post(found, member)
    assert state(member) is BreakerState.OPEN
    await asyncio.sleep(0.06)
    member.replicas[0].pool = ScriptedPool(500)
    assert await post(found, member) == 500
    assert state(member) is BreakerState.CLOSED


async def test_500s_do_not_hide_an_upstream_that_stopped_answering() -> None:
    """A burst of 500s between failures resets the count like any answer, no more."""
    found = upstreams()
    member = member_with(found, ScriptedPool(500))
    for _ in range(20):
        await post(found, member)
    member.replicas[0].pool = ScriptedPool(error=ConnectFailed("refused"))
    for _ in range(THRESHOLD):
        with pytest.raises(ServiceUnavailable):
            await post(found, member)
    assert state(member) is BreakerState.OPEN


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_answers_that_say_the_upstream_is_not_serving_open_it(status: int) -> None:
    found = upstreams()
    member = member_with(found, ScriptedPool(status))
    for _ in range(THRESHOLD):
        assert await post(found, member) == status
    assert state(member) is BreakerState.OPEN
    with pytest.raises(ServiceUnavailable, match="circuit open"):
        await post(found, member)


@pytest.mark.parametrize(
    "error", [ConnectFailed("refused"), ConnectionBroken("reset by peer")], ids=str
)
async def test_transport_errors_open_it(error: Exception) -> None:
    found = upstreams()
    member = member_with(found, ScriptedPool(error=error))
    for _ in range(THRESHOLD):
        with pytest.raises(ServiceUnavailable):
            await post(found, member)
    assert state(member) is BreakerState.OPEN


async def test_timeouts_open_it() -> None:
    found = upstreams()
    member = member_with(found, ScriptedPool(delay=5))
    for _ in range(THRESHOLD):
        with pytest.raises(GatewayTimeout):
            await post(found, member, timeout=0.05)
    assert state(member) is BreakerState.OPEN


async def test_a_refused_connection_through_the_real_pool_opens_it() -> None:
    """No fake: the member address is a loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    found = upstreams(MEMBER_URL=f"http://127.0.0.1:{port}")
    await found.open()
    try:
        member = found["member"]
        for _ in range(THRESHOLD):
            with pytest.raises(ServiceUnavailable):
                await post(found, member)
        assert state(member) is BreakerState.OPEN
    finally:
        await found.aclose()
