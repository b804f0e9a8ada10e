"""Process types and admin processes (12-factor VIII, XII): ``board api|worker|migrate|rebuild-read-model``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from board import bootstrap
from board import main as api_process
from board import worker as worker_process
from board.config import SERVICE_ROOT, Settings
from chassis.cli import run_cli
from chassis.logging import configure_logging
from chassis.migrations import upgrade


def migrate() -> None:
    settings = Settings()
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    upgrade(SERVICE_ROOT, settings.DATABASE_URL)


def rebuild_read_model() -> None:
    settings = Settings()
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    report = asyncio.run(bootstrap.rebuild_read_model(settings))
    print(json.dumps(report.to_json()))


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
