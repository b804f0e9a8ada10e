"""A Zipkin of the trace tests' own, and the saga stack with the gateway exporting every span to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from chassis.faults import FaultFlags
from tests.support.infra import Infra
from tests.system.saga.client import Member, SagaStackClient
from tests.system.saga.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack, running_stack
from tests.system.tracing.zipkin import Zipkin, java_missing, running_zipkin

#: A database no other suite uses (10-15 are taken: rolling restart, integration, saga, fuzz,
#: browser, load generator): fault flags are global keys.
TRACING_REDIS_DB = 9


@pytest.fixture(scope="session")
def zipkin() -> Iterator[Zipkin]:
    reason = java_missing()
    if reason is not None:
        pytest.skip(reason)
    with running_zipkin() as started:
        yield started


@pytest.fixture(scope="session")
async def traced_stack(infra: Infra, zipkin: Zipkin) -> AsyncIterator[Stack]:
    """Every process exports to ``zipkin`` (``OTEL_TRACES_EXPORTER=zipkin``), samples every trace
    and sends its spans every 200 ms instead of the SDK's 5 s."""
    async with running_stack(
        infra,
        redis_db=TRACING_REDIS_DB,
        # a refused retriable step is re-sent 0.3 s later, by the deadline sweeper
        saga_env={"RETRY_BACKOFF_SECONDS": "0.3", "RETRY_BACKOFF_CAP_SECONDS": "0.3"},
        extra_env={
            "OTEL_TRACES_EXPORTER": "zipkin",
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT": zipkin.spans_endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def client(traced_stack: Stack, http: httpx.AsyncClient) -> SagaStackClient:
    """Every call goes through the gateway, as a browser's would."""
    gateway = traced_stack.gateway_url
    urls = dict.fromkeys(("member", "board", "qna", "saga"), gateway)
    token = await SagaStackClient.log_in(http, gateway, ADMIN_EMAIL, ADMIN_PASSWORD)
    me = await http.get(f"{gateway}/api/members/me", headers={"Authorization": f"Bearer {token}"})
    return SagaStackClient(http, urls, Member(me.json()["id"], ADMIN_EMAIL, token))


@pytest.fixture(autouse=True)
async def no_faults(traced_stack: Stack) -> AsyncIterator[None]:
    """Every test starts and ends with every fault flag off."""
    redis: Redis = Redis.from_url(traced_stack.redis_url, decode_responses=True)
    flags = FaultFlags(redis, enabled=True)
    await flags.clear_all()
    yield
    await flags.clear_all()
    await redis.aclose()
