"""Process types of the saga deployable: `saga api`, `saga worker`, `saga migrate` (chassis.cli.service_cli)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chassis.cli import serve_http, service_cli
from saga.bootstrap import build_api, build_worker
from saga.config import Settings

#: The folder holding alembic.ini and migrations/.
SERVICE_ROOT = Path(__file__).resolve().parents[2]


def _api() -> None:
    settings = Settings()
    serve_http(settings, build_api, port=settings.HTTP_PORT)


def _worker() -> None:
    settings = Settings()
    serve_http(settings, build_worker, port=settings.WORKER_PORT, routed=False)


def main(argv: Sequence[str] | None = None) -> None:
    # no read model, so no rebuild-read-model command
    service_cli("saga", Settings, api=_api, worker=_worker, service_root=SERVICE_ROOT, argv=argv)
