"""Composition root: the web front end's API process wired from settings (Redis for sessions, the gateway as its only upstream)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from chassis.app import create_app
from chassis.lifecycle import Phase, Runtime
from chassis.resources import attach
from web.adapters.gateway_client import GatewayClient
from web.config import Settings
from web.entrypoints.pages import boards, home, questions
from web.entrypoints.rendering import Pages, install_error_pages
from web.i18n import load_catalogs

DESCRIPTION = "Server-rendered pages for members, boards and Q&A; a Backend-for-Frontend over the gateway's API."
STATIC = Path(__file__).resolve().parent / "static"


def build_api(settings: Settings, gateway: GatewayClient | None = None) -> FastAPI:
    """The app. ``gateway`` replaces the real client in unit tests (a fake of our own port)."""
    runtime = Runtime(settings.SERVICE_NAME)
    # Readiness checks no upstream: with the gateway or a service down, web still answers a
    # page that says so. Redis (sessions) is degraded, never "not ready": guests keep reading.
    res = attach(settings, runtime, database=False, redis=True, kafka=False, verifier=False)
    client = gateway if gateway is not None else GatewayClient(settings)
    runtime.on_startup("open the gateway connection pool", client.open)
    runtime.on_shutdown("gateway connection pool", client.aclose, Phase.POOLS)
    renderer = Pages(settings, load_catalogs())
    app = create_app(
        settings,
        runtime,
        title="web",
        description=DESCRIPTION,
        routers=[home.router, boards.router, questions.router],
        docs=False,  # web serves pages; the API and its documentation are the gateway's
    )
    install_error_pages(app, renderer)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.pages = renderer
    app.state.gateway = client
    app.state.redis = res.cache
    app.router.redirect_slashes = False
    return app
