"""Migration 0004 gives existing members their text identity keys, colliding ones included."""

from __future__ import annotations

import asyncio
import datetime as dt
import unicodedata
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from chassis.db import create_engine
from chassis.migrations import upgrade
from member.adapters.passwords import Argon2Passwords
from member.bootstrap import build_api
from member.config import SERVICE_ROOT, Settings
from tests.integration.member.helpers import PASSWORD, bearer, log_in
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

HONG = "홍길동"
#: More rows than one backfill batch (0004's BATCH = 1000), so paging is exercised.
FILLER = 2500


async def insert_member(conn: AsyncConnection, **values: Any) -> uuid.UUID:
    row = {
        "id": uuid.uuid4(),
        "password_hash": None,
        "status": "ACTIVE",
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        **values,
    }
    await conn.execute(
        text(
            "INSERT INTO members (id, email, nickname, password_hash, role, status, points, "
            "created_at, updated_at) VALUES (:id, :email, :nickname, :password_hash, 'USER', "
            ":status, 100, :created_at, now())"
        ),
        row,
    )
    member_id: uuid.UUID = row["id"]
    return member_id


async def keys(conn: AsyncConnection) -> dict[uuid.UUID, tuple[str, str, str, str]]:
    rows = await conn.execute(
        text("SELECT id, email, nickname, email_canonical, nickname_canonical FROM members")
    )
    return {r.id: (r.email, r.nickname, r.email_canonical, r.nickname_canonical) for r in rows}


async def test_upgrade_keeps_every_member_and_disambiguates_colliding_nicknames(
    infra: Infra, database_url: str, topic_prefix: str, signing_key_pem: str
) -> None:
    """Text identity migration: nicknames the old lower() index let through twice (NFC and NFD
    Hangul, "Straße"/"STRASSE") keep their display; the oldest keeps the key; withdrawn members
    and more rows than one batch migrate too."""
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url, "0003")
    password_hash = await Argon2Passwords().hash(PASSWORD)
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            hong = await insert_member(
                conn,
                email="hong@example.com",
                nickname=HONG,
                created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
            hong_nfd = await insert_member(
                conn,
                email="hong.nfd@example.com",
                nickname=unicodedata.normalize("NFD", HONG),
                password_hash=password_hash,
                created_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
            )
            strasse = await insert_member(
                conn,
                email="s1@example.com",
                nickname="STRASSE",
                created_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
            )
            strasse_sharp = await insert_member(
                conn,
                email="s2@example.com",
                nickname="Straße",
                created_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
            )
            gone_id = uuid.uuid4()
            gone = await insert_member(
                conn,
                id=gone_id,
                email=f"withdrawn+{gone_id.hex}@invalid",
                nickname=f"탈퇴회원-{gone_id.hex[:12]}",
                status="WITHDRAWN",
            )
            await conn.execute(
                text(
                    "INSERT INTO members (id, email, nickname, role, status, points, created_at, "
                    "updated_at) SELECT gen_random_uuid(), 'f' || n || '@example.com', 'F' || n, "
                    "'USER', 'ACTIVE', 100, now(), now() FROM generate_series(1, :n) AS n"
                ),
                {"n": FILLER},
            )

        await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)

        async with engine.connect() as conn:
            stored = await keys(conn)
        assert len(stored) == 5 + FILLER
        assert all(email_key and nick_key for _, _, email_key, nick_key in stored.values())
        assert stored[hong] == ("hong@example.com", HONG, "hong@example.com", HONG)
        # the younger one keeps what it shows (its old spelling) under a key nobody can type
        assert stored[hong_nfd][1] == unicodedata.normalize("NFD", HONG)
        assert stored[hong_nfd][3] == f"{HONG}\x1f{hong_nfd.hex}"
        assert stored[strasse_sharp][3] == "strasse"  # older than STRASSE
        assert stored[strasse][3] == f"strasse\x1f{strasse.hex}"
        assert stored[gone][2:] == (
            f"withdrawn+{gone_id.hex}@invalid",
            f"탈퇴회원-{gone_id.hex[:12]}",
        )
        assert stored[next(i for i, v in stored.items() if v[1] == "F2500")][3] == "f2500"
    finally:
        await engine.dispose()

    settings = Settings(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap,
        KAFKA_TOPIC_PREFIX=topic_prefix,
        REDIS_URL=infra.redis_url,
        JWT_PRIVATE_KEY=signing_key_pem,
        DATABASE_POOL_SIZE=2,
    )
    app = build_api(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        # nobody new can take the name in any spelling
        for spelling in (HONG, unicodedata.normalize("NFD", HONG), "strasse"):
            taken = await client.post(
                "/api/members",
                json={
                    "email": f"{uuid.uuid4().hex[:8]}@example.com",
                    "password": PASSWORD,
                    "nickname": spelling,
                },
            )
            assert taken.status_code == 409, (spelling, taken.text)
        # the disambiguated member still logs in, and saving it keeps its key
        auth = bearer((await log_in(client, "HONG.NFD@example.com"))["access_token"])
        changed = await client.patch(
            "/api/members/me",
            json={"password": "another-password", "current_password": PASSWORD},
            headers=auth,
        )
        assert changed.status_code == 200, changed.text
        renamed = await client.patch("/api/members/me", json={"nickname": "길동이"}, headers=auth)
        assert renamed.status_code == 200, renamed.text

    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            assert (await keys(conn))[hong_nfd][1:4:2] == ("길동이", "길동이")
    finally:
        await engine.dispose()


async def test_upgrade_refuses_colliding_emails_and_names_the_members(database_url: str) -> None:
    """Text identity migration: two emails with one identity are refused loudly, nothing changes."""
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url, "0003")
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            # lower-case, so the old check and unique index let both in
            one = await insert_member(conn, email="straße@example.com", nickname="one1")
            other = await insert_member(conn, email="strasse@example.com", nickname="two2")

        with pytest.raises(RuntimeError) as refused:
            await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)
        assert "strasse@example.com" in str(refused.value)
        assert str(one) in str(refused.value)
        assert str(other) in str(refused.value)

        async with engine.connect() as conn:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            columns = await conn.scalars(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'members' AND column_name LIKE '%canonical'"
                )
            )
            assert (version, columns.all()) == ("0003", [])
            assert await conn.scalar(text("SELECT count(*) FROM members")) == 2
    finally:
        await engine.dispose()
