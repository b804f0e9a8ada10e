"""Process types and admin processes (12-factor VIII, XII): ``board api|worker|migrate|rebuild-read-model``."""

from __future__ import annotations

from collections.abc import Sequence

from board import bootstrap
from board import main as api_process
from board import worker as worker_process
from board.config import SERVICE_ROOT, Settings
from chassis.cli import service_cli


def main(argv: Sequence[str] | None = None) -> None:
    """The ``board`` command (``chassis.cli.service_cli``); ``rebuild-read-model`` runs
    ``bootstrap.rebuild_read_model`` beside the running worker."""
    service_cli(
        "board",
        Settings,
        api=api_process.run,
        worker=worker_process.run,
        service_root=SERVICE_ROOT,
        rebuild=bootstrap.rebuild_read_model,
        argv=argv,
    )


if __name__ == "__main__":
    main()
