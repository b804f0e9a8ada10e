"""Migration 0003 brings an existing qna database to the set-based answer count and the status guard."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from chassis.db import create_engine
from chassis.migrations import upgrade
from qna.config import SERVICE_ROOT

pytestmark = pytest.mark.integration


async def test_upgrade_from_0002_fills_the_answer_set_and_repairs_the_count(
    database_url: str,
) -> None:
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url, "0002")
    question = uuid.uuid4()
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO questions (id, title, content, bounty, status, version, "
                    "created_at, updated_at) VALUES (:q, 't', 'c', 0, 'OPEN', 7, now(), now())"
                ),
                {"q": question},
            )
            for _ in range(3):
                await conn.execute(
                    text(
                        "INSERT INTO answers (id, question_id, content, accepted, created_at, "
                        "updated_at) VALUES (:a, :q, 'c', false, now(), now())"
                    ),
                    {"a": uuid.uuid4(), "q": question},
                )
            await conn.execute(
                text(
                    "INSERT INTO question_summaries (id, title, bounty, status, answer_count, "
                    "version, created_at, updated_at) "
                    "VALUES (:q, 't', 0, 'OPEN', 2, 7, now(), now())"
                ),
                {"q": question},
            )

        await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)

        async with engine.connect() as conn:
            assert (
                await conn.scalar(text("SELECT count(*) FROM question_summary_answers WHERE alive"))
                == 3
            )
            row = (
                await conn.execute(
                    text("SELECT answer_count, status_version FROM question_summaries")
                )
            ).one()
            assert tuple(row) == (3, 7)
    finally:
        await engine.dispose()
