"""Composition root: the web front end's API process wired from settings (Redis for sessions, the gateway as its only upstream)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware

from chassis.app import create_app
from chassis.lifecycle import Phase, Runtime
from chassis.resources import attach
from web.adapters.gateway_client import GatewayClient, GatewayPort
from web.adapters.session_records import RedisSessionRecords, SessionRecords
from web.config import Settings
from web.entrypoints.deps import SessionCookieMiddleware, install_session_handlers
from web.entrypoints.pages import account, admin, auth, boards, home, mypage, questions, sagas
from web.entrypoints.rendering import ErrorPageMiddleware, Pages, install_error_pages
from web.entrypoints.security_headers import SecurityHeadersMiddleware
from web.i18n import load_catalogs
from web.sessions import Clock, SessionStore

DESCRIPTION = "Server-rendered pages for members, boards and Q&A; a Backend-for-Frontend over the gateway's API."
STATIC = Path(__file__).resolve().parent / "static"


def build_api(
    settings: Settings,
    gateway: GatewayPort | None = None,
    *,
    records: SessionRecords | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The app. In unit tests ``gateway`` and ``records`` replace the real gateway client and
    the Redis session records (fakes of our own ports) and ``clock`` the wall clock."""
    runtime = Runtime(settings.SERVICE_NAME)
    # Readiness checks no upstream: with the gateway or a service down, web still answers a
    # page that says so. Redis (sessions) is degraded, never "not ready": guests keep reading.
    res = attach(settings, runtime, database=False, redis=True, kafka=False, verifier=False)
    client: GatewayPort = gateway if gateway is not None else GatewayClient(settings)
    runtime.on_startup("open the gateway connection pool", client.open)
    runtime.on_shutdown("gateway connection pool", client.aclose, Phase.POOLS)
    renderer = Pages(settings, load_catalogs())
    app = create_app(
        settings,
        runtime,
        title="web",
        description=DESCRIPTION,
        routers=[
            home.router,
            auth.router,
            account.router,
            sagas.router,
            mypage.router,
            boards.router,
            questions.router,
            admin.router,
        ],
        docs=False,  # web serves pages; the API and its documentation are the gateway's
        # the security headers outermost, so every answer carries them (an error page too);
        # then the error page, so a failure in the session layer is a page too
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            Middleware(ErrorPageMiddleware, pages=renderer),
            Middleware(SessionCookieMiddleware),
        ],
    )
    install_error_pages(app, renderer)
    install_session_handlers(app, renderer)
    session_records = records or RedisSessionRecords(
        res.cache, prefix=settings.WEB_REDIS_KEY_PREFIX, service=settings.SERVICE_NAME
    )
    store = SessionStore(session_records, client, settings)
    if clock is not None:
        store.clock = clock
    app.state.sessions = store
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.pages = renderer
    app.state.gateway = client
    app.state.redis = res.cache
    app.router.redirect_slashes = False
    return app
