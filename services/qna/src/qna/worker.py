"""Process type ``worker`` (12-factor VIII): outbox relay, consumers (authors, read model, saga
commands); health and metrics on WORKER_PORT."""

from __future__ import annotations

from fastapi import FastAPI

from chassis.cli import serve_http
from qna.bootstrap import build_worker
from qna.config import Settings


def create_app() -> FastAPI:
    """For ``uvicorn --factory qna.worker:create_app``."""
    return build_worker(Settings())


def run() -> None:
    settings = Settings()
    serve_http(settings, lambda _: build_worker(settings), port=settings.WORKER_PORT, routed=False)
