"""Command line: one CLI for every process of the qna deployable (api, worker, migrate, rebuild-read-model)."""

from __future__ import annotations

from collections.abc import Sequence

from chassis.cli import service_cli
from qna import bootstrap, worker
from qna import main as api_process
from qna.config import SERVICE_ROOT, Settings


def main(argv: Sequence[str] | None = None) -> None:
    """``qna api | worker | migrate | rebuild-read-model`` (``chassis.cli.service_cli``)."""
    service_cli(
        "qna",
        Settings,
        api=api_process.run,
        worker=worker.run,
        service_root=SERVICE_ROOT,
        rebuild=bootstrap.rebuild_read_model,
        argv=argv,
    )
