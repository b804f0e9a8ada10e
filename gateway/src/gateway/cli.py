"""Process types of the gateway deployable: ``gateway api``."""

from __future__ import annotations

from collections.abc import Sequence

from chassis.cli import run_cli, serve_http
from gateway.bootstrap import build_api
from gateway.config import Settings


def api() -> None:
    settings = Settings()
    serve_http(settings, lambda _: build_api(settings), port=settings.HTTP_PORT)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli("gateway", {"api": ("serve the public API gateway", api)}, argv)


if __name__ == "__main__":
    main()
