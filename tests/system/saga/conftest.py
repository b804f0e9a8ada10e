"""The saga stack, started once for the whole system suite, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from chassis.faults import FaultFlags
from tests.support.infra import Infra
from tests.system.saga.client import Member, SagaStackClient
from tests.system.saga.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack, running_stack


@pytest.fixture(scope="session")
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    """Member, board, qna and saga (api + worker each) as real processes, started once."""
    async with running_stack(
        infra,
        step_timeout=60,
        # a refused retriable step: 3 attempts, 0.3 s apart, then FAILED and parked in the DLQ
        saga_env={
            "RETRY_BACKOFF_SECONDS": "0.3",
            "RETRY_BACKOFF_CAP_SECONDS": "0.3",
            "RETRIABLE_MAX_ATTEMPTS": "3",
        },
    ) as started:
        yield started


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def client(stack: Stack, http: httpx.AsyncClient) -> SagaStackClient:
    urls = {s: stack.url(s) for s in ("member", "board", "qna", "saga")}
    token = await SagaStackClient.log_in(http, urls["member"], ADMIN_EMAIL, ADMIN_PASSWORD)
    admin_id = (
        await http.get(
            f"{urls['member']}/api/members/me", headers={"Authorization": f"Bearer {token}"}
        )
    ).json()["id"]
    return SagaStackClient(http, urls, Member(admin_id, ADMIN_EMAIL, token))


@pytest.fixture(autouse=True)
async def no_faults(stack: Stack) -> AsyncIterator[FaultFlags]:
    """Every test starts and ends with every fault flag off."""
    redis: Redis = Redis.from_url(stack.redis_url, decode_responses=True)
    flags = FaultFlags(redis, enabled=True)
    await flags.clear_all()
    yield flags
    await flags.clear_all()
    await redis.aclose()
