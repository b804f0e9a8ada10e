"""Process type ``api`` as an ASGI factory, for running under any ASGI server
(``uvicorn --factory gateway.main:create_app``); ``gateway api`` is the usual way."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.bootstrap import build_api
from gateway.config import Settings


def create_app() -> FastAPI:
    """Read the settings and build the app; nothing is created at import time."""
    return build_api(Settings())
