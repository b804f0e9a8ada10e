"""Process type ``api`` (12-factor VIII): the member HTTP API on HTTP_PORT."""

from __future__ import annotations

from fastapi import FastAPI

from chassis.cli import serve_http
from member.adapters.tokens import KeyConfigurationError
from member.bootstrap import build_api
from member.config import Settings


def create_app() -> FastAPI:
    """For ``uvicorn --factory member.main:create_app``; settings are read at call time."""
    return build_api(Settings())


def run() -> None:
    settings = Settings()
    try:
        serve_http(settings, build_api, port=settings.HTTP_PORT)
    except KeyConfigurationError as exc:
        # Fail fast with one clear line: the api must not run without its signing key.
        raise SystemExit(f"member api: {exc}") from exc
