"""Migration 0003 brings an existing board database to the set-based comment count, filled from its comments."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from board.config import SERVICE_ROOT
from chassis.db import create_engine
from chassis.migrations import upgrade

pytestmark = pytest.mark.integration


async def test_upgrade_from_0002_fills_the_comment_set_and_repairs_the_count(
    database_url: str,
) -> None:
    await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url, "0002")
    board, post = uuid.uuid4(), uuid.uuid4()
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO boards (id, slug, name, description, created_at) "
                    "VALUES (:b, 'm0003', 'm', 'm', now())"
                ),
                {"b": board},
            )
            await conn.execute(
                text(
                    "INSERT INTO posts (id, board_id, title, content, comment_count, version, "
                    "created_at, updated_at) VALUES (:p, :b, 't', 'c', 3, 5, now(), now())"
                ),
                {"p": post, "b": board},
            )
            for deleted in (False, False, False, True):
                await conn.execute(
                    text(
                        "INSERT INTO comments (id, post_id, content, created_at, updated_at, "
                        "deleted_at) VALUES (:c, :p, 'c', now(), now(), "
                        "CASE WHEN :d THEN now() END)"
                    ),
                    {"c": uuid.uuid4(), "p": post, "d": deleted},
                )
            # the state: one comment event was lost, the list says 2
            await conn.execute(
                text(
                    "INSERT INTO post_summaries (post_id, board_id, title, author_nickname, "
                    "comment_count, created_at, updated_at, version) "
                    "VALUES (:p, :b, 't', 'n', 2, now(), now(), 5)"
                ),
                {"p": post, "b": board},
            )

        await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)

        async with engine.connect() as conn:
            alive = await conn.execute(
                text("SELECT alive, count(*) FROM post_summary_comments GROUP BY alive")
            )
            assert {r[0]: r[1] for r in alive} == {True: 3, False: 1}
            count = await conn.scalar(text("SELECT comment_count FROM post_summaries"))
            assert count == 3
    finally:
        await engine.dispose()
