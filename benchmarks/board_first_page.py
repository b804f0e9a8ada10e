"""Benchmark of the board's first-page cache: the post list with the Redis cache off and on.

Not a test: run it by hand with the local infrastructure up (``make infra-up``)::

    set -a; source deploy/local/local.env; set +a
    uv run python benchmarks/board_first_page.py [--posts 1000 100000] [--requests 2000]
        [--concurrency 16]

For each ``--posts`` size it creates a scratch database, migrates it, and fills the ``free``
board's read model with that many summaries (not measured). Then it serves
``GET /api/boards/{free}/posts`` (page 1, size 20) from the real ``board api`` application,
in-process through httpx's ASGI transport, ``--requests`` times with at most
``--concurrency`` in flight: once with ``FIRST_PAGE_CACHE_SECONDS=0`` and once with the cache
on. Nothing invalidates the cache during the run, so the cached figure is the ceiling a quiet
board reaches; a busy board misses once after each change the worker projects.

It prints requests per second, p50 and p99 for both, and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg
import httpx
from sqlalchemy import text

from board.adapters.tables import RECOUNT_LIST_COUNTS
from board.bootstrap import build_api
from board.config import SERVICE_ROOT, Settings
from chassis.db import create_engine
from chassis.logging import configure_logging
from chassis.migrations import upgrade

SEED = """
INSERT INTO post_summaries (post_id, board_id, title, author_id, author_nickname,
    comment_count, view_count, created_at, updated_at, version, deleted)
SELECT gen_random_uuid(), :board, '게시글 ' || n, gen_random_uuid(), '회원' || (n % 500),
    n % 7, n % 100, now() - make_interval(secs => n), now() - make_interval(secs => n), 1,
    n % 50 = 0
FROM generate_series(1, :posts) AS n
"""


@dataclass
class Figures:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


def _admin_dsn() -> str:
    return os.environ.get("PG_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:55432/postgres")


async def _scratch_database(name: str) -> str:
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = _admin_dsn().rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _seed(database_url: str, posts: int) -> str:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            board = await conn.scalar(text("SELECT id FROM boards WHERE slug = 'free'"))
            await conn.execute(text(SEED), {"board": board, "posts": posts})
            await conn.execute(text(RECOUNT_LIST_COUNTS))  # the counters behind `total`
            await conn.execute(text("ANALYZE post_summaries"))
    finally:
        await engine.dispose()
    return str(board)


async def _measure(settings: Settings, board: str, requests: int, concurrency: int) -> Figures:
    api = build_api(settings)
    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(api.router.lifespan_context(api))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://bench")
        )
        path = f"/api/boards/{board}/posts"
        for _ in range(20):  # warm up the pools (and, with the cache on, fill it)
            (await client.get(path)).raise_for_status()
        remaining = iter(range(requests))

        async def worker() -> None:
            for _ in remaining:
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100)
    return Figures(requests / elapsed, quantiles[49], quantiles[98])


async def _run(posts_sizes: list[int], requests: int, concurrency: int) -> None:
    print(f"GET first page (size 20), {requests} requests, concurrency {concurrency}, in-process")
    print(f"{'posts':>8} {'cache':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  ratio")
    for posts in posts_sizes:
        name = f"bench_board_{uuid.uuid4().hex[:8]}"
        database_url = await _scratch_database(name)
        try:
            await asyncio.to_thread(upgrade, SERVICE_ROOT, database_url)
            board = await _seed(database_url, posts)
            results: dict[str, Figures] = {}
            for label, seconds in (("off", 0.0), ("on", 30.0)):
                settings = Settings(
                    DATABASE_URL=database_url,
                    REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0"),
                    REDIS_KEY_PREFIX=f"{name}:",
                    FIRST_PAGE_CACHE_SECONDS=seconds,
                )
                results[label] = figures = await _measure(settings, board, requests, concurrency)
                ratio = figures.requests_per_second / results["off"].requests_per_second
                print(
                    f"{posts:>8} {label:>6} {figures.requests_per_second:>8.0f} "
                    f"{figures.p50_ms:>8.1f} {figures.p99_ms:>8.1f}  {ratio:.2f}x"
                )
        finally:
            await _drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    configure_logging("board-bench", "WARNING")  # no access log: both modes would pay it alike
    # each run builds the app again, and OpenTelemetry warns that it is instrumented already
    logging.getLogger("opentelemetry.instrumentation.instrumentor").setLevel(logging.ERROR)
    asyncio.run(_run(args.posts, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
