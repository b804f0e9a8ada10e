"""What several walkthroughs share: a logged-in load on the stack's gateway, and the post list (board's CQRS read model) read beside its write model."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx

from tools.chaos.load import Load
from tools.chaos.stack import Target


@asynccontextmanager
async def session(target: Target) -> AsyncIterator[Load]:
    """A ``Load`` on ``target``'s gateway with its admin logged in; ``RuntimeError`` when the
    gateway does not answer or the admin cannot log in."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as http:
        try:
            (await http.get(f"{target.gateway_url}/readyz", timeout=5)).raise_for_status()
        except httpx.HTTPError as exc:
            raise RuntimeError(
                f"the gateway at {target.gateway_url} is not ready ({exc}): is `make run` running?"
            ) from exc
        load = Load(
            http, random.Random(), target.gateway_url, target.admin_email, target.admin_password
        )
        load.admin = await load.log_in(target.admin_email, target.admin_password)
        if load.admin is None:
            raise RuntimeError(f"the admin {target.admin_email} cannot log in through the gateway")
        yield load


@asynccontextmanager
async def board_db(target: Target) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to board's database (its write model and read model)."""
    connection = await asyncpg.connect(target.database_url("board"), timeout=5)
    try:
        yield connection
    finally:
        await connection.close()


#: Each post beside its row in the post list (``post_summaries``), the live comments counted.
POST_ROWS = """
SELECT p.id::text AS post_id, p.title, s.title AS listed_title,
       (SELECT count(*) FROM comments c WHERE c.post_id = p.id AND c.deleted_at IS NULL)
         AS comments,
       s.comment_count AS listed_comments, s.post_id IS NOT NULL AS listed
  FROM posts p LEFT JOIN post_summaries s ON s.post_id = p.id
 WHERE p.id = ANY($1::uuid[])
 ORDER BY p.created_at
"""


async def post_rows(db: asyncpg.Connection, post_ids: list[str]) -> list[dict[str, Any]]:
    """``POST_ROWS`` for ``post_ids``: one dict per post that exists in the write model."""
    return [dict(row) for row in await db.fetch(POST_ROWS, post_ids)]


def unprojected(rows: list[dict[str, Any]]) -> list[str]:
    """The posts whose list row is missing or differs from the post (title, comment count)."""
    return [
        row["post_id"]
        for row in rows
        if not row["listed"]
        or row["listed_title"] != row["title"]
        or row["listed_comments"] != row["comments"]
    ]


async def until(
    probe: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.5
) -> float | None:
    """Seconds until ``probe()`` holds, or None when it did not within ``timeout`` seconds."""
    started = time.monotonic()
    while True:
        if await probe():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(interval)


async def write_posts(
    load: Load, stop: asyncio.Event, written: list[str], writers: int = 2
) -> None:
    """Posts written by ``writers`` members at once until ``stop`` is set; each id is
    appended to ``written`` as soon as it is answered."""

    async def writer(index: int) -> None:
        member = load.world.members[index % len(load.world.members)]
        while not stop.is_set():
            post_id = await load.write_post(member)
            if post_id is not None:
                written.append(post_id)
            await asyncio.sleep(0.05)

    await asyncio.gather(*(writer(i) for i in range(writers)))


def failed(load: Load, since: int, ops: tuple[str, ...] | None = None) -> list[str]:
    """The requests of ``load`` from index ``since`` on (of ``ops``, default any) that failed."""
    return [
        f"{r.op} -> {r.status} {r.detail[:80]}".rstrip()
        for r in load.requests[since:]
        if not r.ok and (ops is None or r.op in ops)
    ]
