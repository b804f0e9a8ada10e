"""The admin process ``member migrate``: schema plus an idempotent admin account seed (``bootstrap.seed_admin``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import jwt
import pytest
from sqlalchemy import select

from chassis.db import create_engine, outbox_table
from chassis.migrations import upgrade
from member import bootstrap
from member.adapters.tables import members
from member.bootstrap import build_api
from member.config import SERVICE_ROOT, Settings
from tests.integration.member.helpers import bearer, log_in, sign_up
from tests.support.infra import REPO, Infra

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin-password-1"


async def migrate(settings: Settings) -> None:
    """What ``member migrate`` does, in this process and with these settings."""
    await asyncio.to_thread(upgrade, SERVICE_ROOT, settings.DATABASE_URL, "heads")
    await bootstrap.seed_admin(settings)


async def test_migrate_seeds_the_admin_once(
    infra: Infra, database_url: str, signing_key_pem: str
) -> None:
    settings = Settings(
        DATABASE_URL=database_url,
        REDIS_URL=infra.redis_url,
        JWT_PRIVATE_KEY=signing_key_pem,
        ADMIN_EMAIL="Admin@Example.com",
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        ADMIN_NICKNAME="운영자",
    )
    await migrate(settings)
    # the same admin process again, as its CLI (a re-run of the Job must change nothing)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ADMIN_EMAIL": "admin@example.com",
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    rerun = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from member.cli import main; main()", "migrate"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]

    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(members))).all()
            registered = [
                r.payload
                for r in await conn.execute(select(outbox_table))
                if r.type == "MemberRegistered"
            ]
    finally:
        await engine.dispose()
    [row] = rows
    assert (row.email, row.email_canonical, row.nickname, row.role, row.points) == (
        "Admin@Example.com",
        "admin@example.com",
        "운영자",
        "ADMIN",
        100,
    )
    [event] = registered
    assert (event["member_id"], event["nickname"], event["role"]) == (
        str(row.id),
        "운영자",
        "ADMIN",
    )

    app = build_api(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        tokens = await log_in(client, "admin@example.com", ADMIN_PASSWORD)
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        assert claims["role"] == "ADMIN"
        assert claims["sub"] == str(row.id)
        assert set(claims) == {"sub", "role", "iss", "aud", "exp", "iat"}
        assert claims["exp"] - claims["iat"] == 900
        other = await sign_up(client)
        response = await client.get(
            f"/api/members/{other['id']}", headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 200


async def test_migrate_without_admin_settings_seeds_nothing(database_url: str) -> None:
    settings = Settings(DATABASE_URL=database_url, ADMIN_EMAIL=None, ADMIN_PASSWORD=None)
    await migrate(settings)
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(select(members))).all() == []
    finally:
        await engine.dispose()
