"""Member API against real PostgreSQL and Redis: sign-up, profile, activity, duplicates, outbox."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from chassis.db import create_engine, outbox_table
from member.config import Settings
from tests.integration.member.helpers import (
    PASSWORD,
    bearer,
    log_in,
    sign_up,
    unique_email,
    unique_nickname,
)

pytestmark = pytest.mark.integration


async def outbox(settings: Settings) -> list[tuple[str, str, dict[str, object]]]:
    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(outbox_table).order_by(outbox_table.c.seq))
            return [(r.topic, r.type, r.payload) for r in rows]
    finally:
        await engine.dispose()


async def test_sign_up_login_and_read_me(client: httpx.AsyncClient, settings: Settings) -> None:
    email = unique_email("Alice").replace("alice", "ALICE")
    response = await client.post(
        "/api/members", json={"email": email, "password": PASSWORD, "nickname": "  앨리스 "}
    )

    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"id", "email", "nickname", "role", "status", "points", "created_at"}
    assert created["email"] == email  # as typed; login below compares by text identity
    assert (created["nickname"], created["role"], created["status"], created["points"]) == (
        "앨리스",
        "USER",
        "ACTIVE",
        100,
    )
    assert response.headers["location"] == f"/api/members/{created['id']}"

    tokens = await log_in(client, email.upper())
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    me = await client.get("/api/members/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json() == created
    by_id = await client.get(response.headers["location"], headers=bearer(tokens["access_token"]))
    assert by_id.json() == created

    [(topic, event_type, payload)] = await outbox(settings)
    assert (topic, event_type) == ("member.events", "MemberRegistered")
    assert payload["member_id"] == created["id"]
    assert (payload["nickname"], payload["role"], payload["profile_version"]) == (
        "앨리스",
        "USER",
        1,
    )
    assert "occurred_at" in payload


async def test_duplicates_are_conflicts(client: httpx.AsyncClient) -> None:
    first = await sign_up(client)
    same_email = await client.post(
        "/api/members",
        json={"email": first["email"].upper(), "password": PASSWORD, "nickname": "other1"},
    )
    same_nickname = await client.post(
        "/api/members",
        json={
            "email": unique_email(),
            "password": PASSWORD,
            "nickname": first["nickname"].upper(),
        },
    )
    for response in (same_email, same_nickname):
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"


async def test_concurrent_duplicate_sign_ups_give_one_member_and_conflicts(
    client: httpx.AsyncClient,
) -> None:
    email, nickname = unique_email(), unique_nickname()
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/members", json={"email": email, "password": PASSWORD, "nickname": nickname}
            )
            for _ in range(4)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409]


async def test_idempotency_key_returns_the_first_result(client: httpx.AsyncClient) -> None:
    body = {"email": unique_email(), "password": PASSWORD, "nickname": unique_nickname()}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await client.post("/api/members", json=body, headers=key)
    again = await client.post("/api/members", json=body, headers=key)
    other = await client.post(
        "/api/members", json={**body, "nickname": unique_nickname()}, headers=key
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert other.status_code == 422


async def test_profile_update(client: httpx.AsyncClient, settings: Settings) -> None:
    member = await sign_up(client)
    tokens = await log_in(client, member["email"])
    auth = bearer(tokens["access_token"])
    taken = await sign_up(client)

    renamed = await client.patch("/api/members/me", json={"nickname": " 새이름 "}, headers=auth)
    assert renamed.status_code == 200
    assert renamed.json()["nickname"] == "새이름"
    clash = await client.patch(
        "/api/members/me", json={"nickname": taken["nickname"]}, headers=auth
    )
    assert clash.status_code == 409

    missing = await client.patch("/api/members/me", json={"password": "new-password"}, headers=auth)
    wrong = await client.patch(
        "/api/members/me",
        json={"password": "new-password", "current_password": "not-it-at-all"},
        headers=auth,
    )
    assert (missing.status_code, wrong.status_code) == (422, 403)
    changed = await client.patch(
        "/api/members/me",
        json={"password": "new-password", "current_password": PASSWORD},
        headers=auth,
    )
    assert changed.status_code == 200
    await log_in(client, member["email"], "new-password")
    old = await client.post(
        "/api/auth/login", json={"email": member["email"], "password": PASSWORD}
    )
    assert old.status_code == 401
    # the password change ended the sessions opened with the old password
    stale = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert stale.status_code == 401

    changes = [p for (_, t, p) in await outbox(settings) if t == "MemberProfileChanged"]
    assert changes == [
        {
            "member_id": member["id"],
            "nickname": "새이름",
            "profile_version": 2,  # the second version of the profile
            "occurred_at": changes[0]["occurred_at"],
        }
    ]


async def test_activity_of_a_new_member_is_zero_with_signup_points(
    client: httpx.AsyncClient,
) -> None:
    member = await sign_up(client)
    tokens = await log_in(client, member["email"])
    response = await client.get("/api/members/me/activity", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == {
        "posts": 0,
        "comments": 0,
        "questions": 0,
        "answers": 0,
        "accepted_answers": 0,
        "points": 100,
    }


async def test_reading_another_member_needs_admin(client: httpx.AsyncClient) -> None:
    alice, bob = await sign_up(client), await sign_up(client)
    tokens = await log_in(client, alice["email"])
    response = await client.get(f"/api/members/{bob['id']}", headers=bearer(tokens["access_token"]))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_member_in_a_valid_token_is_not_found(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    token = api_app.state.tokens.issue(uuid.uuid4(), "USER").token
    for path in ("/api/members/me", "/api/members/me/activity"):
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
