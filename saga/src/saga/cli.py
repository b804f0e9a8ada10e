"""Process types of the saga deployable: `saga api`, `saga worker`, `saga migrate`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chassis.cli import run_cli, serve_http
from chassis.logging import configure_logging
from chassis.migrations import upgrade
from saga.bootstrap import build_api, build_worker
from saga.config import Settings

#: The folder holding alembic.ini and migrations/.
SERVICE_ROOT = Path(__file__).resolve().parents[2]


def _api() -> None:
    settings = Settings()
    serve_http(settings, build_api, port=settings.HTTP_PORT)


def _worker() -> None:
    settings = Settings()
    serve_http(settings, build_worker, port=settings.WORKER_PORT)


def _migrate() -> None:
    settings = Settings()
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    upgrade(SERVICE_ROOT, settings.DATABASE_URL)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(
        "saga",
        {
            "api": ("serve the saga HTTP API", _api),
            "worker": ("consume replies, time out steps, relay the outbox", _worker),
            "migrate": ("apply database migrations (one-off admin process)", _migrate),
        },
        argv,
    )
