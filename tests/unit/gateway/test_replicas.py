"""Replicas of one upstream: round robin over the ready ones, /readyz health checks, failover on a refused connection.

Kind: a replica restarting fails requests. The gateway must send nothing to a replica its
health check found unready (it drains after SIGTERM), move any request to the next replica
when a connection is refused (nothing was sent, so every method may move), and never open the
upstream's circuit while another replica serves. Pools are fakes of our own ``Pool`` port.
"""

from __future__ import annotations

import asyncio

import pytest

from chassis.problems import ServiceUnavailable
from gateway.breaker import BreakerState
from gateway.config import Settings
from gateway.pool import ConnectFailed, ConnectionBroken, UpstreamReply
from gateway.proxy import Upstream, Upstreams
from gateway.replicas import READINESS_PATH, ReplicaSet, split_urls

A = "http://127.0.0.1:8002"
B = "http://127.0.0.1:8012"
THRESHOLD = 3


class FakeReplica:
    """One replica's pool: answers ``status`` to requests and ``ready`` to /readyz, or refuses
    connections (``refuse``), or breaks them after the request was sent (``broken``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = 200
        self.ready = 200
        self.refuse = False
        self.broken = False
        self.calls: list[tuple[str, str]] = []

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamReply:
        if self.refuse:
            raise ConnectFailed(f"cannot connect to {self.name}: refused")
        if target == READINESS_PATH:
            return UpstreamReply(self.ready, [], b"{}")
        self.calls.append((method, target))
        if self.broken:
            raise ConnectionBroken("ServerDisconnectedError: Server disconnected")
        return UpstreamReply(self.status, [], self.name.encode())

    async def aclose(self) -> None:
        return None


def two_replicas(**overrides: object) -> tuple[Upstreams, Upstream, FakeReplica, FakeReplica]:
    values: dict[str, object] = {
        "BOARD_URL": f"{A},{B}",
        "BREAKER_FAILURE_THRESHOLD": THRESHOLD,
        "BREAKER_RESET_SECONDS": 60,
        "UPSTREAM_RETRY_BACKOFF_SECONDS": 0,
        **overrides,
    }
    found = Upstreams(Settings(**values))  # type: ignore[arg-type]
    board = found["board"]
    a, b = FakeReplica("a"), FakeReplica("b")
    board.replicas[0].pool = a
    board.replicas[1].pool = b
    return found, board, a, b


async def call(found: Upstreams, board: Upstream, method: str = "GET") -> UpstreamReply:
    return await found.call(board, method, "/api/boards", [], b"", timeout=2, route="r")


def state(upstream: Upstream) -> BreakerState:
    return upstream.breaker.state


def test_a_comma_separated_url_lists_replicas_and_a_single_url_is_one() -> None:
    settings = Settings(BOARD_URL=f" {A}/ , {B} ", MEMBER_URL="http://member-api:8000")
    replicas = settings.upstream_replicas()
    assert replicas["board"] == [A, B]
    assert replicas["member"] == ["http://member-api:8000"]
    assert split_urls("http://x") == ["http://x"]
    with pytest.raises(ValueError, match="no upstream URL"):
        split_urls(" , ")


def test_the_jwks_default_names_the_first_member_replica() -> None:
    settings = Settings(MEMBER_URL="http://127.0.0.1:8001,http://127.0.0.1:8011", JWKS_URL="")
    assert settings.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"


def test_only_a_list_is_health_checked() -> None:
    found, *_ = two_replicas()
    assert [s.name for s in found.health_checks.sets] == ["board"]
    single = ReplicaSet("member", ["http://member-api:8000"])
    single.eject(single.replicas[0], "refused")
    assert single.replicas[0].ready  # nothing would bring it back: a single address stays


async def test_requests_alternate_between_the_ready_replicas() -> None:
    found, board, a, b = two_replicas()
    for _ in range(10):
        await call(found, board)
    assert len(a.calls) == 5
    assert len(b.calls) == 5


async def test_a_replica_whose_readyz_fails_gets_nothing_until_it_passes_again() -> None:
    found, board, a, b = two_replicas()
    checks = found.health_checks
    a.ready = 503  # SIGTERM: it drains
    await checks.check_all()
    assert [r.ready for r in board.replicas] == [False, True]
    for _ in range(6):
        await call(found, board, "POST")
    assert (len(a.calls), len(b.calls)) == (0, 6)
    a.ready = 200  # restarted and ready
    await checks.check_all()
    for _ in range(6):
        await call(found, board, "POST")
    assert (len(a.calls), len(b.calls)) == (3, 9)


async def test_a_health_check_with_no_answer_in_time_takes_the_replica_out() -> None:
    found, board, a, _ = two_replicas(UPSTREAM_HEALTH_CHECK_TIMEOUT_SECONDS=0.05)
    original = a.request

    async def hang(*args: object, **kwargs: object) -> UpstreamReply:
        await asyncio.sleep(1)
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    a.request = hang  # type: ignore[method-assign]
    await found.health_checks.check_all()
    assert not board.replicas[0].ready


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE", "GET"])
async def test_a_refused_connection_fails_over_for_every_method(method: str) -> None:
    """Nothing was sent, so even a POST may go to the next replica; the refusing replica leaves
    the rotation at once and the breaker never hears of it."""
    found, board, a, b = two_replicas(UPSTREAM_RETRY_ATTEMPTS=1)
    a.refuse = True  # kill -9: its port is closed
    for _ in range(THRESHOLD * 5):
        reply = await call(found, board, method)
        assert reply.body == b"b"
    assert not board.replicas[0].ready
    assert state(board) is BreakerState.CLOSED
    assert len(b.calls) == THRESHOLD * 5


async def test_concurrent_requests_to_a_restarting_replica_do_not_open_the_circuit() -> None:
    found, board, a, _ = two_replicas()
    a.refuse = True
    replies = await asyncio.gather(*(call(found, board, "POST") for _ in range(THRESHOLD * 4)))
    assert all(r.status == 200 for r in replies)
    assert state(board) is BreakerState.CLOSED


async def test_a_connection_broken_after_sending_is_retried_elsewhere_only_when_idempotent() -> (
    None
):
    found, board, a, _ = two_replicas(UPSTREAM_RETRY_ATTEMPTS=3)
    a.broken = True  # it died with the request in flight
    got = [(await call(found, board, "GET")).body for _ in range(4)]
    assert got == [b"b"] * 4  # a GET is repeated on the other replica
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append((await call(found, board, "POST")).body)
        except ServiceUnavailable:
            outcomes.append(b"503")
    # a POST that may have been processed is never repeated: those that went to a fail
    assert outcomes.count(b"503") == 2
    assert outcomes.count(b"b") == 2
    assert state(board) is BreakerState.CLOSED  # fewer failures in a row than the threshold


async def test_when_no_replica_is_ready_every_replica_is_still_tried() -> None:
    """Panic routing: all unready (their database is down) is answered as with one URL."""
    found, board, a, b = two_replicas()
    a.ready = b.ready = 503
    await found.health_checks.check_all()
    assert not any(r.ready for r in board.replicas)
    a.status = b.status = 503
    reply = await call(found, board, "POST")
    assert reply.status == 503
    assert len(a.calls) + len(b.calls) == 1


async def test_a_refused_connection_falls_back_to_a_replica_the_health_check_has_not_readmitted() -> (
    None
):
    """A rolling restart with no drain: replica a is back and listening, but the gateway's
    health check has not seen it yet, when b is stopped. A request must not fail while a
    replica still answers: the one out of the rotation is tried last, not never."""
    found, board, a, b = two_replicas(UPSTREAM_RETRY_ATTEMPTS=1)
    a.ready = 503
    await found.health_checks.check_all()
    assert not board.replicas[0].ready
    a.ready = 200  # a is back; no health check has run since
    b.refuse = True  # b stopped at once
    for method in ("GET", "POST"):
        reply = await call(found, board, method)
        assert reply.body == b"a"
    assert state(board) is BreakerState.CLOSED


async def test_every_replica_refusing_is_an_upstream_failure() -> None:
    found, board, a, b = two_replicas(UPSTREAM_RETRY_ATTEMPTS=1)
    a.refuse = b.refuse = True
    for _ in range(THRESHOLD):
        with pytest.raises(ServiceUnavailable):
            await call(found, board, "POST")
    assert state(board) is BreakerState.OPEN


async def test_the_health_check_loop_runs_until_stopped() -> None:
    found, board, a, _ = two_replicas(UPSTREAM_HEALTH_CHECK_INTERVAL_SECONDS=0.01)
    checks = found.health_checks
    task = asyncio.create_task(checks.run())
    a.ready = 503
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not board.replicas[0].ready:
            break
    assert not board.replicas[0].ready
    a.ready = 200
    for _ in range(100):
        await asyncio.sleep(0.01)
        if board.replicas[0].ready:
            break
    assert board.replicas[0].ready
    await checks.stop()
    await asyncio.wait_for(task, 1)
