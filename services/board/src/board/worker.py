"""The ``worker`` process type: outbox relay, projector, saga participant, view-count flush.

It serves only ``/healthz``, ``/readyz`` and ``/metrics``, on ``WORKER_PORT`` (9102 locally).
"""

from __future__ import annotations

from fastapi import FastAPI

from board.bootstrap import build_worker
from board.config import Settings
from chassis.cli import serve_http


def create_app() -> FastAPI:
    """App factory (``uvicorn --factory board.worker:create_app``); nothing is built at import."""
    return build_worker(Settings())


def run() -> None:
    settings = Settings()
    serve_http(settings, lambda _: build_worker(settings), port=settings.WORKER_PORT, routed=False)
