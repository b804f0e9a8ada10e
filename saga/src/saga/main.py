"""The api process as an ASGI factory: ``uvicorn --factory saga.main:create_app`` (``saga api`` does the same)."""

from __future__ import annotations

from fastapi import FastAPI

from saga.bootstrap import build_api
from saga.config import Settings


def create_app() -> FastAPI:
    return build_api(Settings())
