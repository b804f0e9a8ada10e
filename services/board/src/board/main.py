"""The ``api`` process type: the board HTTP API on ``HTTP_PORT`` (8002 locally)."""

from __future__ import annotations

from fastapi import FastAPI

from board.bootstrap import build_api
from board.config import Settings
from chassis.cli import serve_http


def create_app() -> FastAPI:
    """App factory (``uvicorn --factory board.main:create_app``); nothing is built at import."""
    return build_api(Settings())


def run() -> None:
    settings = Settings()
    serve_http(settings, lambda _: build_api(settings), port=settings.HTTP_PORT)
