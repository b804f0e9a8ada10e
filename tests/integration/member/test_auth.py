"""Tokens against the real api: rotation, reuse detection, forged tokens, lockout, JWKS, key config."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import text

from chassis.db import create_engine
from member.adapters.tokens import KeyConfigurationError
from member.bootstrap import build_api
from member.config import Settings
from tests.integration.member.helpers import PASSWORD, bearer, log_in, sign_up
from tests.support.processes import free_port
from tests.support.tokens import TokenIssuer, unsigned_token

pytestmark = pytest.mark.integration


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


async def execute(settings: Settings, sql: str, **params: object) -> None:
    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    member = await sign_up(client)
    first = await log_in(client, member["email"])

    rotated = await refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get("/api/members/me", headers=bearer(second["access_token"]))
    assert me.json()["id"] == member["id"]

    reused = await refresh(client, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.headers["content-type"] == "application/problem+json"
    # the whole family died, including the legitimate successor
    assert (await refresh(client, second["refresh_token"])).status_code == 401
    # another login is a new family and works
    other = await log_in(client, member["email"])
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_of_one_token_cannot_both_win(
    client: httpx.AsyncClient,
) -> None:
    member = await sign_up(client)
    pair = await log_in(client, member["email"])
    responses = await asyncio.gather(*(refresh(client, pair["refresh_token"]) for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [200, 401, 401]


async def test_logout_revokes_and_repeats_quietly(client: httpx.AsyncClient) -> None:
    member = await sign_up(client)
    pair = await log_in(client, member["email"])

    for _ in range(2):
        response = await client.post(
            "/api/auth/logout", json={"refresh_token": pair["refresh_token"]}
        )
        assert response.status_code == 204
    assert (await refresh(client, pair["refresh_token"])).status_code == 401
    unknown = await client.post("/api/auth/logout", json={"refresh_token": "x" * 43})
    assert unknown.status_code == 204


async def test_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    member = await sign_up(client)
    pair = await log_in(client, member["email"])
    await execute(
        settings,
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE member_id = :m",
        m=member["id"],
    )
    assert (await refresh(client, pair["refresh_token"])).status_code == 401


async def test_login_and_refresh_refused_while_withdrawing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    member = await sign_up(client)
    pair = await log_in(client, member["email"])
    await execute(
        settings,
        "UPDATE members SET status = 'WITHDRAWING', withdrawal_saga_id = 's' WHERE id = :m",
        m=member["id"],
    )

    refused = await refresh(client, pair["refresh_token"])
    login = await client.post(
        "/api/auth/login", json={"email": member["email"], "password": PASSWORD}
    )

    assert refused.status_code == 401
    assert login.status_code == 403
    assert login.headers["content-type"] == "application/problem+json"
    assert "WITHDRAWING" in login.json()["detail"]


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "ADMIN"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_forged_tokens_are_refused(
    client: httpx.AsyncClient, signing_key: Ed25519PrivateKey, api_app: FastAPI
) -> None:
    member = await sign_up(client)
    pair = await log_in(client, member["email"])
    kid = api_app.state.tokens.kid
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": member["id"], "role": "USER", "iss": "msa-member", "aud": "msa"}

    def signed(key: Ed25519PrivateKey, **overrides: object) -> str:
        body = {**claims, "iat": now, "exp": now + dt.timedelta(minutes=5), **overrides}
        return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid})

    forged = {
        "tampered": _tamper(pair["access_token"]),
        "expired": signed(
            signing_key,
            iat=now - dt.timedelta(hours=1),
            exp=now - dt.timedelta(minutes=10),
        ),
        "alg none": unsigned_token(member["id"]),
        "other key, same kid": signed(Ed25519PrivateKey.generate()),
        "wrong audience": signed(signing_key, aud="someone-else"),
        "wrong issuer": signed(signing_key, iss="someone-else"),
        "foreign issuer kid": TokenIssuer().token(member["id"]),
        "hs256": jwt.encode(
            {**claims, "iat": now, "exp": now + dt.timedelta(minutes=5)},
            "secret-" * 5,
            algorithm="HS256",
            headers={"kid": kid},
        ),
        "garbage": "not.a.jwt",
    }
    assert (
        await client.get("/api/members/me", headers=bearer(signed(signing_key)))
    ).status_code == 200
    for name, token in forged.items():
        response = await client.get("/api/members/me", headers=bearer(token))
        assert response.status_code == 401, name
        assert response.headers["content-type"] == "application/problem+json", name


async def test_lockout_after_five_failures(client: httpx.AsyncClient) -> None:
    member = await sign_up(client)
    wrong = {"email": member["email"].upper(), "password": "wrong password"}
    codes = [(await client.post("/api/auth/login", json=wrong)).status_code for _ in range(5)]
    assert codes == [401] * 5

    locked = await client.post(
        "/api/auth/login", json={"email": member["email"], "password": PASSWORD}
    )

    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    assert 1 <= int(locked.headers["retry-after"]) <= 60


async def test_success_resets_the_failure_count(client: httpx.AsyncClient) -> None:
    member = await sign_up(client)
    wrong = {"email": member["email"], "password": "wrong password"}
    for _ in range(4):
        assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
    await log_in(client, member["email"])
    for _ in range(4):
        assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
    await log_in(client, member["email"])


async def test_jwks_publishes_current_and_previous_keys(settings: Settings) -> None:
    previous = Ed25519PrivateKey.generate().public_key()
    previous_pem = previous.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    previous_jwk = {**TokenIssuer().jwk(), "d": "must-not-be-published"}
    app = build_api(
        settings.model_copy(
            update={"JWT_PREVIOUS_PUBLIC_KEYS": [previous_pem, previous_jwk], "JWT_KEY_ID": "k-now"}
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.get("/.well-known/jwks.json")
    keys = response.json()["keys"]
    assert keys[0]["kid"] == "k-now"
    assert len(keys) == 3
    assert all(k["kty"] == "OKP" and k["alg"] == "EdDSA" and "d" not in k for k in keys)
    assert keys[2]["kid"] == previous_jwk["kid"]


def test_api_refuses_to_start_without_a_signing_key(settings: Settings) -> None:
    with pytest.raises(KeyConfigurationError):
        build_api(settings.model_copy(update={"JWT_PRIVATE_KEY": None}))
    with pytest.raises(KeyConfigurationError):
        build_api(
            settings.model_copy(
                update={
                    "JWT_PRIVATE_KEY": None,
                    "JWT_PRIVATE_KEY_FILE": Path("/nonexistent/key.pem"),
                }
            )
        )


async def test_with_redis_down_logins_stay_available_and_still_limited(
    settings: Settings,
) -> None:
    """Redis is degraded around: the failure count falls back to this replica's memory, so a
    correct login succeeds (not 503 for everyone) and a sixth wrong one is still refused."""
    down = settings.model_copy(update={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    app = build_api(down)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        member = await sign_up(client)
        await log_in(client, member["email"])
        wrong = {"email": member["email"], "password": "wrong password"}
        codes = [(await client.post("/api/auth/login", json=wrong)).status_code for _ in range(5)]
        assert codes == [401] * 5
        locked = await client.post(
            "/api/auth/login", json={"email": member["email"], "password": PASSWORD}
        )
        assert locked.status_code == 429
        other = await sign_up(client)
        await log_in(client, other["email"])
