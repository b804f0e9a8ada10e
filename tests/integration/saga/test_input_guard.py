"""Bad input is refused with a 422 problem and starts nothing (saga api, through its app)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.db import create_engine
from saga.config import Settings
from saga.store import saga_instances
from tests.integration.saga.test_api import FakeAcceptanceChecks, client_for
from tests.support.refusals import assert_refused, count_rows
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(settings: Settings, issuer: TokenIssuer) -> AsyncIterator[httpx.AsyncClient]:
    async for c in client_for(settings, FakeAcceptanceChecks(), issuer):
        yield c


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    yield engine
    await engine.dispose()


async def test_nul_in_the_idempotency_key_starts_no_saga(
    client: httpx.AsyncClient, engine: AsyncEngine, issuer: TokenIssuer
) -> None:
    """Text a store cannot take: the Idempotency-Key of a withdrawal is stored in PostgreSQL."""
    headers = {**issuer.headers(uuid.uuid4()), "Idempotency-Key": "withdraw\x00"}
    response = await client.delete("/api/members/me", headers=headers)
    assert_refused(response, "header", "idempotency-key")
    assert await count_rows(engine, saga_instances) == 0


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/api/admin/faults/bo%00ard/anonymize-author", {"mode": "fail"}, ["path"]),
        ("/api/admin/faults/board/" + "x" * 101, {"mode": "fail"}, ["path", "command"]),
        (
            "/api/admin/faults/board/anonymize-author",
            {"mode": "delay", "delay_ms": 2**31},
            ["body", "delay_ms"],
        ),
        (
            "/api/admin/faults/board/anonymize-author",
            {"mode": "delay", "delay_ms": 2**63},
            ["body", "delay_ms"],
        ),
    ],
)
async def test_fault_flag_input_out_of_bounds_is_refused(
    client: httpx.AsyncClient, issuer: TokenIssuer, path: str, body: object, loc: list[str]
) -> None:
    """Text a store cannot take (the path names a Redis key), oversized text, and a number out
    of range: the fault-flag API of the admin."""
    response = await client.put(path, json=body, headers=issuer.headers(role="ADMIN"))
    assert_refused(response, *loc)
