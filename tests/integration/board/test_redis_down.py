"""Redis is a degraded dependency: with Redis down the board worker still projects, applies saga commands and stays ready."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import REGISTRY

from board.bootstrap import build_worker
from board.config import Settings
from chassis.saga import SagaCommand
from tests.integration.board.conftest import _start
from tests.integration.board.harness import BoardStack
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.tcp_proxy import TcpProxy
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.integration


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def no_redis_settings(board_settings: Settings) -> Settings:
    # Fault injection on: the participant reads its fault flags from the (unreachable) Redis.
    return board_settings.model_copy(
        update={"REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0", "FAULT_INJECTION": True}
    )


@pytest.fixture
async def board_without_redis(
    no_redis_settings: Settings, issuer: TokenIssuer
) -> AsyncIterator[BoardStack]:
    async for stack in _start(no_redis_settings, issuer, with_worker=True):
        yield stack


def _bypassed(operation: str) -> float:
    value = REGISTRY.get_sample_value(
        "degraded_dependency_failures_total",
        {"service": "board", "dependency": "redis", "operation": operation},
    )
    return value or 0.0


async def test_with_redis_down_the_worker_projects_and_applies_saga_commands(
    board_without_redis: BoardStack, infra: Infra
) -> None:
    board = board_without_redis
    free = await board.board_id("free")
    member = uuid.uuid4()
    flags_bypassed = _bypassed("fault_flags")
    invalidations_bypassed = _bypassed("first_page_invalidation")

    post = await board.write_post(member, "레디스가 없어도")
    # the projector's cache invalidation fails open: the post list still gets the post
    await board.wait_for_item(free, post["id"], lambda i: True, "the post projected")
    assert _bypassed("first_page_invalidation") > invalidations_bypassed

    saga_id = str(uuid.uuid4())
    await board.send_saga_command(
        SagaCommand(
            saga_id=saga_id,
            saga_type="member-withdrawal",
            step="anonymize-author",
            command="AnonymizeAuthor",
            payload={"member_id": str(member)},
        )
    )
    # the fault flags fail open: the command is applied, not blocked nor dead-lettered
    reply = await board.saga_reply(saga_id, "AnonymizeAuthor")
    assert reply["outcome"] == "SUCCESS"
    assert reply["result"]["posts"] == 1
    assert _bypassed("fault_flags") > flags_bypassed

    for topic in ("board.events.dlq", "saga.board.commands.dlq"):
        parked = await read_topic(
            infra.kafka_bootstrap, board.settings.topic(topic), min_count=0, timeout=1
        )
        assert parked == [], f"{topic} is not empty"


async def test_with_redis_down_the_worker_stays_ready_and_shows_redis_degraded(
    no_redis_settings: Settings,
) -> None:
    worker = build_worker(no_redis_settings)
    async with (
        worker.router.lifespan_context(worker),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=worker), base_url="http://worker"
        ) as client,
    ):
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["postgres"] == "up"
        assert checks["redis"].startswith("degraded:")
        assert (await client.get("/healthz")).status_code == 200
        up = REGISTRY.get_sample_value("dependency_up", {"service": "board", "dependency": "redis"})
        assert up == 0


async def test_with_redis_silent_the_projector_keeps_its_pace_and_the_worker_stays_ready(
    board_settings: Settings, issuer: TokenIssuer
) -> None:
    """A Redis that accepts connections and never answers: each cache invalidation gives up
    after ``INVALIDATION_TIMEOUT_SECONDS`` instead of the client's whole reply timeout, so the
    projector is not held seconds per event, and the worker's ``/readyz`` answers within the
    probe's timeout."""
    target = urlsplit(board_settings.REDIS_URL)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    settings = board_settings.model_copy(update={"REDIS_URL": proxy.url(board_settings.REDIS_URL)})
    try:
        async for board in _start(settings, issuer, with_worker=True):
            free = await board.board_id("free")
            member = uuid.uuid4()
            first = await board.write_post(member, "먼저")
            await board.wait_for_item(free, first["id"], lambda i: True, "the first post projected")
            await proxy.stall()

            loop = asyncio.get_running_loop()
            start = loop.time()
            posts = [await board.write_post(member, f"조용한 레디스 {n}") for n in range(3)]
            await board.wait_for_item(free, posts[-1]["id"], lambda i: True, "the last projected")
            took = loop.time() - start
            # three invalidations held for the 2 s reply timeout each would take >= 4 s
            assert took < 3.0, f"three posts took {took:.2f} s to project"

            worker = build_worker(settings)
            async with (
                worker.router.lifespan_context(worker),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=worker), base_url="http://worker"
                ) as client,
            ):
                start = loop.time()
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"]["redis"].startswith("degraded:")
                assert loop.time() - start < 1.5
    finally:
        await proxy.close()
