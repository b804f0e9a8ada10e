"""Process types of the web deployable: ``web api``."""

from __future__ import annotations

from collections.abc import Sequence

from chassis.cli import run_cli, serve_http
from web.bootstrap import build_api
from web.config import Settings


def api() -> None:
    settings = Settings()
    serve_http(settings, lambda _: build_api(settings), port=settings.HTTP_PORT)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli("web", {"api": ("serve the web front end (pages and the BFF)", api)}, argv)


if __name__ == "__main__":
    main()
