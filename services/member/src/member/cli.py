"""Command line: one CLI for every process of the member deployable (api, worker, migrate, rebuild-read-model)."""

from __future__ import annotations

from collections.abc import Sequence

from chassis.cli import service_cli
from member import bootstrap, worker
from member import main as api_process
from member.config import SERVICE_ROOT, Settings


def main(argv: Sequence[str] | None = None) -> None:
    """``member api | worker | migrate | rebuild-read-model``; ``migrate`` then seeds the admin
    account (``bootstrap.seed_admin``), which only member has."""
    service_cli(
        "member",
        Settings,
        api=api_process.run,
        worker=worker.run,
        service_root=SERVICE_ROOT,
        after_migrate=bootstrap.seed_admin,
        rebuild=bootstrap.rebuild_read_model,
        argv=argv,
    )
