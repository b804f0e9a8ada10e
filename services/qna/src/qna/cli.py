"""Command line: one CLI for every process of the qna deployable (api, worker, migrate, rebuild)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from chassis.cli import run_cli
from chassis.logging import configure_logging
from chassis.migrations import upgrade
from qna import bootstrap, worker
from qna import main as api_process
from qna.config import SERVICE_ROOT, Settings


def migrate() -> None:
    """Admin process: apply the schema migrations (a one-off Job in Kubernetes)."""
    settings = Settings()
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    upgrade(SERVICE_ROOT, settings.DATABASE_URL)


def rebuild_read_model() -> None:
    """Admin process: rebuild question_summaries from qna.events and member.events."""
    settings = Settings()
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    print(json.dumps(asyncio.run(bootstrap.rebuild_read_model(settings)).to_json()))


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(
        "qna",
        {
            "api": ("serve the HTTP API", api_process.run),
            "worker": (
                "run the outbox relay, author copy, read-model projector and saga participant",
                worker.run,
            ),
            "migrate": ("apply the database migrations", migrate),
            "rebuild-read-model": (
                "rebuild question_summaries from the event topics",
                rebuild_read_model,
            ),
        },
        argv,
    )
