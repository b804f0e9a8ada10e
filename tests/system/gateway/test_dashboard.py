"""GET /api/me/dashboard composes four upstream reads and degrades instead of failing."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.processes import ServiceProcess
from tests.support.tokens import TokenIssuer

from .conftest import set_echo_mode

pytestmark = pytest.mark.system

DASHBOARD_TIMEOUT = 1.0  # DASHBOARD_TIMEOUT_SECONDS of the shared gateway


@pytest.fixture
async def healthy_echoes(
    echoes: dict[str, ServiceProcess],
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """Whatever a test does to the echoes, they answer normally again afterwards."""
    yield echoes
    for echo in echoes.values():
        await set_echo_mode(echo)


async def test_the_dashboard_composes_the_four_parts(
    client: httpx.AsyncClient, issuer: TokenIssuer, healthy_echoes: dict[str, ServiceProcess]
) -> None:
    me = uuid.uuid4()
    token = issuer.token(me)
    response = await client.get("/api/me/dashboard", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] == []
    assert (body["member"]["upstream"], body["member"]["path"]) == ("member", "/api/members/me")
    assert body["member"]["headers"]["authorization"] == f"Bearer {token}"
    assert body["activity"]["path"] == "/api/members/me/activity"
    assert body["recent_posts"] == [
        {"upstream": "board", "path": "/api/posts", "query": f"author_id={me}&size=5"}
    ]
    assert body["recent_questions"] == [
        {"upstream": "qna", "path": "/api/questions", "query": f"author_id={me}&size=5"}
    ]


async def test_failing_and_slow_parts_are_null_and_named(
    client: httpx.AsyncClient, issuer: TokenIssuer, healthy_echoes: dict[str, ServiceProcess]
) -> None:
    await set_echo_mode(healthy_echoes["board"], delay=5)
    await set_echo_mode(healthy_echoes["qna"], status=500)
    started = time.monotonic()
    response = await client.get("/api/me/dashboard", headers=issuer.headers())
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] == ["recent_posts", "recent_questions"]
    assert body["recent_posts"] is None
    assert body["recent_questions"] is None
    assert body["member"]["upstream"] == "member"
    assert body["activity"]["upstream"] == "member"
    # The parts run in parallel, each bounded by the dashboard timeout.
    assert elapsed < DASHBOARD_TIMEOUT + 1.0


async def test_the_dashboard_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/dashboard")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
