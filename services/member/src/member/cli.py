"""Command line: one CLI for every process of the member deployable (api, worker, migrate, rebuild)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chassis.cli import run_cli
from chassis.logging import configure_logging
from member import admin, worker
from member import main as api_process
from member.config import Settings


def _admin(run: Callable[[Settings], None]) -> None:
    settings = Settings()
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    run(settings)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(
        "member",
        {
            "api": ("serve the HTTP API", api_process.run),
            "worker": (
                "run the outbox relay, activity projection and saga participant",
                worker.run,
            ),
            "migrate": (
                "apply migrations and seed the admin account",
                lambda: _admin(admin.migrate),
            ),
            "rebuild-activity": (
                "rebuild member_activity from the event topics",
                lambda: _admin(admin.rebuild_command),
            ),
        },
        argv,
    )
