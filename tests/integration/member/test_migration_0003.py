"""Migration 0003 fills member_activity's points items from this database's members and transfers."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from chassis.db import create_engine
from chassis.migrations import upgrade
from member.config import SERVICE_ROOT

pytestmark = pytest.mark.integration


async def test_upgrade_from_0002_fills_the_points_items(database_url: str) -> None:
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url, "0002")
    alice, bob = uuid.uuid4(), uuid.uuid4()
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            # alice paid bob 30 (saga s1) and 10 more that were refunded (saga s2)
            for member, nickname, points in ((alice, "alice", 70), (bob, "bob", 130)):
                await conn.execute(
                    text(
                        "INSERT INTO members (id, email, nickname, role, status, points, "
                        "created_at, updated_at) VALUES (:m, :e, :n, 'USER', 'ACTIVE', :p, "
                        "now(), now())"
                    ),
                    {"m": member, "e": f"{nickname}@example.com", "n": nickname, "p": points},
                )
            for saga, amount, refunded in (("s1", 30, False), ("s2", 10, True)):
                await conn.execute(
                    text(
                        "INSERT INTO point_transfers (saga_id, from_member_id, to_member_id, "
                        "amount, question_id, transferred_at, refunded_at) "
                        "VALUES (:s, :f, :t, :a, 'q', now(), CASE WHEN :r THEN now() END)"
                    ),
                    {"s": saga, "f": alice, "t": bob, "a": amount, "r": refunded},
                )
            # a read model that double-counted a redelivered transfer
            await conn.execute(
                text("INSERT INTO member_activity (member_id, posts, points) VALUES (:m, 2, 40)"),
                {"m": alice},
            )

        await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)

        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT member_id, points, posts FROM member_activity"))
            assert {r.member_id: (r.points, r.posts) for r in rows} == {
                alice: (70, 2),  # the posts wait for `member rebuild-read-model`
                bob: (130, 0),
            }
    finally:
        await engine.dispose()
