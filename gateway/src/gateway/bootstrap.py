"""Composition root: the gateway's API process wired from settings (no database, no Kafka)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from chassis import swagger_ui
from chassis.app import create_app
from chassis.auth import install_verifier
from chassis.lifecycle import Phase, Runtime
from chassis.resources import attach
from chassis.token_denylist import TokenDenyList
from gateway import compose, docs
from gateway.auth import EdgeAuth, VerifiedTokens, build_denied_members, build_verifier
from gateway.config import Settings
from gateway.pages import PageErrorMiddleware
from gateway.proxy import Proxy, Upstreams
from gateway.ratelimit import RateLimiter
from gateway.routes import TABLE

DESCRIPTION = (
    "The single entry point: routing, JWT at the edge, rate limits, timeouts, retries, "
    "circuit breakers, the composed dashboard and the aggregated API documentation."
)


def build_api(settings: Settings) -> FastAPI:
    runtime = Runtime(settings.SERVICE_NAME)
    # Readiness checks no upstream: a broken upstream must still be answered (503) by a ready
    # gateway rather than take the whole front door out of the load balancer. Redis (rate
    # limits and the token deny-list, which fail open) shows as "degraded" in the detail, never as not ready.
    res = attach(settings, runtime, database=False, redis=True, kafka=False, verifier=False)
    upstreams = Upstreams(settings)
    runtime.on_startup("open upstream connection pools", upstreams.open)
    if upstreams.health_checks.sets:
        # Replicas listed in a *_URL: /readyz of each, so a draining one leaves the rotation.
        runtime.add_background("upstream health checks", upstreams.health_checks, Phase.POOLS)
    runtime.on_shutdown("upstream connection pools", upstreams.aclose, Phase.POOLS)
    proxy = Proxy(
        TABLE,
        upstreams,
        EdgeAuth(
            build_verifier(settings),
            VerifiedTokens(
                max_age=settings.TOKEN_CACHE_SECONDS, max_entries=settings.TOKEN_CACHE_SIZE
            ),
            build_denied_members(settings, TokenDenyList(res.cache)),
        ),
        RateLimiter(
            res.cache,
            per_minute=settings.RATE_LIMIT_PER_MINUTE,
            key_prefix=settings.RATE_LIMIT_KEY_PREFIX,
        ),
        settings,
    )
    app = create_app(
        settings,
        runtime,
        title="gateway",
        description=DESCRIPTION,
        routers=[compose.router, docs.router, swagger_ui.router],
        docs=False,  # /docs is the aggregated one (docs.py)
        check_bodies=False,  # bodies are checked by the services they are forwarded to
        # HEAD, OPTIONS and Allow on the proxied paths come from the route table too
        allowed_methods=TABLE.allowed,
        # inside the request context: a preflight answer also carries X-Request-ID
        middleware=[
            # outside CORS and the method rules, so that their refusals on a page path are
            # pages too; inside the request context, so a page carries X-Request-ID
            Middleware(PageErrorMiddleware, is_page=TABLE.is_page),
            Middleware(
                CORSMiddleware,
                allow_origins=settings.CORS_ORIGINS,
                # the table's methods; HEAD is a CORS-safelisted method, listed for clarity
                allow_methods=sorted(TABLE.methods | {"HEAD"}),
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "X-Request-ID",
                    "traceparent",
                ],
                expose_headers=["X-Request-ID", "Location", "Retry-After"],
                max_age=600,
            ),
        ],
    )
    app.state.proxy = proxy
    install_verifier(app, proxy.auth.verifier)
    # Everything the gateway does not serve itself goes to the route table; trailing-slash
    # redirects would only hide a 404.
    app.router.default = proxy
    app.router.redirect_slashes = False
    return app
