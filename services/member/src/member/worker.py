"""Process type ``worker`` (12-factor VIII): outbox relay, activity projection and saga participant;
health and metrics on WORKER_PORT."""

from __future__ import annotations

from fastapi import FastAPI

from chassis.cli import serve_http
from member.bootstrap import build_worker
from member.config import Settings


def create_app() -> FastAPI:
    """For ``uvicorn --factory member.worker:create_app``."""
    return build_worker(Settings())


def run() -> None:
    settings = Settings()
    serve_http(settings, build_worker, port=settings.WORKER_PORT, routed=False)
