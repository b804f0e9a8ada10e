"""Bad input is refused with a 422 problem and changes nothing stored (member, through its app)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.db import create_engine
from member.adapters.tables import members
from member.config import Settings
from tests.integration.member.helpers import PASSWORD, sign_up, unique_email, unique_nickname
from tests.support.refusals import LONE_SURROGATE, NUL, assert_refused, raw_json

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    yield engine
    await engine.dispose()


async def member_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(members))).scalar_one()
        )


async def test_login_with_nul_in_the_email_is_refused(client: httpx.AsyncClient) -> None:
    """Text a store cannot take: the issue's own input, NUL in a login email, was a 500 from
    PostgreSQL (and opened the gateway's breaker for everyone)."""
    response = await client.post(
        "/api/auth/login",
        **raw_json('{"email":"a{bad}@x.io","password":"12345678"}', NUL),
    )
    assert_refused(response, "body", "email")


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("field", ["email", "nickname", "password"])
async def test_sign_up_with_unstorable_text_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, field: str, bad: str
) -> None:
    """Text a store cannot take: NUL or a lone surrogate in any string of a sign-up body."""
    await sign_up(client)
    before = await member_count(engine)
    values = {"email": unique_email(), "nickname": unique_nickname(), "password": PASSWORD}
    values[field] = values[field][:3] + "{bad}" + values[field][3:]
    response = await client.post("/api/members", **raw_json(json.dumps(values), bad))
    assert_refused(response, "body", field)
    assert await member_count(engine) == before


async def test_unstorable_text_in_a_json_key_is_refused(client: httpx.AsyncClient) -> None:
    """Text a store cannot take: object keys are strings too (and end up in error messages)."""
    response = await client.post(
        "/api/auth/login",
        **raw_json('{"email":"a@x.io","password":"12345678","x{bad}":1}', LONE_SURROGATE),
    )
    problem = assert_refused(response, "body")
    assert problem["errors"][0]["loc"] == ["body", "x\\ud800"]


async def test_raw_surrogate_bytes_in_a_body_are_refused(client: httpx.AsyncClient) -> None:
    """Text a store cannot take: the UTF-8-like bytes of a surrogate (Python's JSON decoder
    would pass them through as a lone surrogate)."""
    response = await client.post(
        "/api/auth/login",
        content=b'{"email":"a\xed\xa0\x80@x.io","password":"12345678"}',
        headers={"Content-Type": "application/json"},
    )
    assert_refused(response, "body")


async def test_nul_in_the_idempotency_key_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Text a store cannot take: the Idempotency-Key header is stored in PostgreSQL."""
    before = await member_count(engine)
    response = await client.post(
        "/api/members",
        json={"email": unique_email(), "nickname": unique_nickname(), "password": PASSWORD},
        headers={"Idempotency-Key": "key\x00one"},
    )
    assert_refused(response, "header", "idempotency-key")
    assert await member_count(engine) == before


async def test_an_overlong_idempotency_key_is_refused(client: httpx.AsyncClient) -> None:
    """Oversized text: the Idempotency-Key has a documented maximum length."""
    response = await client.post(
        "/api/members",
        json={"email": unique_email(), "nickname": unique_nickname(), "password": PASSWORD},
        headers={"Idempotency-Key": "k" * 201},
    )
    assert_refused(response, "header", "idempotency-key")


@pytest.mark.parametrize("path", ["/api/members", "/api/auth/login"])
async def test_a_huge_password_never_reaches_the_hash(
    client: httpx.AsyncClient, engine: AsyncEngine, path: str
) -> None:
    """Oversized text: a 1 MB password is refused by its bound before argon2 sees it."""
    before = await member_count(engine)
    body = {"email": unique_email(), "nickname": unique_nickname(), "password": "p" * 1_000_000}
    if path.endswith("login"):
        body.pop("nickname")
    response = await client.post(path, json=body)
    assert_refused(response, "body", "password")
    assert await member_count(engine) == before


@pytest.mark.parametrize(
    ("target", "loc"),
    [
        ("/api/members/%00", ["path"]),
        ("/api/members/%ff%fe", ["path"]),
        ("/api/members/me?x%00=1", ["query", "x\\u0000"]),
        ("/api/members/me?x=%c3%28", ["query", "x"]),
    ],
)
async def test_unstorable_text_in_the_path_or_query_is_refused(
    client: httpx.AsyncClient, target: str, loc: list[str]
) -> None:
    """Text a store cannot take, and percent-encoding that is not UTF-8 (it would be read as
    U+FFFD, silently), in the path or a query parameter's name or value."""
    response = await client.get(target)
    problem = assert_refused(response, *loc)
    assert problem["errors"][0]["loc"] == loc
