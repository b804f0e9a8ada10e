"""The gateway refuses text no store can take in the path, query and headers itself (422 problem),
and forwards bodies unchanged to the services, which check them (chassis.input_guard)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.refusals import assert_refused

pytestmark = pytest.mark.system


@pytest.mark.parametrize(
    ("target", "loc"),
    [
        ("/api/questions?q=a%00b", ["query", "q"]),
        ("/api/boards/00000000-0000-0000-0000-000000000000/posts?q=%00", ["query", "q"]),
        ("/api/questions?q=%ff", ["query", "q"]),
        ("/api/posts/%00", ["path"]),
        ("/api/posts/%c3%28", ["path"]),
    ],
)
async def test_unstorable_text_in_the_path_or_query_is_refused_at_the_edge(
    client: httpx.AsyncClient, target: str, loc: list[str]
) -> None:
    """Text a store cannot take (and percent-encoding that is not UTF-8): refused by the gateway
    itself, never forwarded, so no upstream answers a 5xx that could open its breaker."""
    response = await client.get(target)
    assert "x-echo-upstream" not in response.headers  # no upstream saw it
    problem = assert_refused(response, *loc)
    assert problem["errors"][0]["loc"] == loc


async def test_a_json_body_is_forwarded_unchanged(client: httpx.AsyncClient) -> None:
    """The gateway does not parse bodies: the bytes reach the service, whose guard checks them.
    (A lone surrogate, since the echo upstream answers a body with a NUL as a service once did:
    with a 500, see ``test_fairness.py``.)"""
    body = b'{"email":"a\\ud800@x.io","password":"12345678"}'
    response = await client.post(
        "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["body"] == body.decode()
