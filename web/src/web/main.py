"""Process type ``api`` as an ASGI factory, for running under any ASGI server
(``uvicorn --factory web.main:create_app``); ``web api`` is the usual way."""

from __future__ import annotations

from fastapi import FastAPI

from web.bootstrap import build_api
from web.config import Settings


def create_app() -> FastAPI:
    """Read the settings and build the app; nothing is created at import time."""
    return build_api(Settings())
