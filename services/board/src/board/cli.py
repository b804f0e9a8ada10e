"""Process types and admin processes (12-factor VIII, XII): ``board api|worker|migrate|rebuild-read-model``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict

from board import main as api_process
from board import worker as worker_process
from board.bootstrap import first_page_cache
from board.config import SERVICE_ROOT, Settings
from board.service_layer.rebuild import rebuild_post_summaries
from chassis.cli import run_cli
from chassis.db import create_engine
from chassis.logging import configure_logging
from chassis.migrations import upgrade
from chassis.redis import create_redis


def migrate() -> None:
    settings = Settings()
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    upgrade(SERVICE_ROOT, settings.DATABASE_URL)


async def _rebuild(settings: Settings) -> None:
    engine = create_engine(settings.DATABASE_URL, pool_size=2)
    redis = create_redis(settings.REDIS_URL)
    try:
        report = await rebuild_post_summaries(
            engine,
            kafka=settings.kafka_connection(),
            topics=[settings.topic("board.events"), settings.topic("member.events")],
            service=settings.SERVICE_NAME,
            first_pages=first_page_cache(redis, settings),
        )
    finally:
        await redis.aclose()
        await engine.dispose()
    print(json.dumps({"rebuilt": "post_summaries", **asdict(report)}))


def rebuild_read_model() -> None:
    settings = Settings()
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    asyncio.run(_rebuild(settings))


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(
        "board",
        {
            "api": ("serve the HTTP API", api_process.run),
            "worker": (
                "run the relay, projector, saga participant and view flush",
                worker_process.run,
            ),
            "migrate": ("apply the database migrations", migrate),
            "rebuild-read-model": (
                "replay the topics into a fresh post list and swap it in",
                rebuild_read_model,
            ),
        },
        argv,
    )


if __name__ == "__main__":
    main()
