"""Process type ``api`` (12-factor VIII): the qna HTTP API on HTTP_PORT."""

from __future__ import annotations

from fastapi import FastAPI

from chassis.cli import serve_http
from qna.bootstrap import build_api
from qna.config import Settings


def create_app() -> FastAPI:
    """For ``uvicorn --factory qna.main:create_app``; settings are read at call time."""
    return build_api(Settings())


def run() -> None:
    settings = Settings()
    serve_http(settings, lambda _: build_api(settings), port=settings.HTTP_PORT)
