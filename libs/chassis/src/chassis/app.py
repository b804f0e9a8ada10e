"""Service template: one factory gives every FastAPI process the same edges (errors, ids, methods, health, metrics, tracing)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from opentelemetry import trace
from pydantic import BaseModel
from pydantic_core import to_json
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis import health, metrics, swagger_ui
from chassis.input_guard import InputGuard
from chassis.lifecycle import Runtime
from chassis.logging import get_logger
from chassis.messaging.failures import describe, is_transient
from chassis.methods import AllowedMethods, MethodSemanticsMiddleware, combined, route_methods
from chassis.openapi import document_problems
from chassis.problems import install_problem_handlers, problem_response
from chassis.settings import BaseServiceSettings
from chassis.tracing import instrument_app

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
access_log = get_logger("access")
unexpected_log = get_logger("chassis.problems")


def report_unexpected(scope: Scope, exc: Exception) -> int:
    """Record an exception no handler answered on the current span, log it, and return the
    status to answer it with: 503 for a transient infrastructure failure (a database or Redis
    that cannot be reached, ``chassis.messaging.failures``), a dependency outage the gateway's
    breaker counts (docs/CONVENTIONS.md "Status codes"), logged as a warning; 500 for anything
    else, a bug, logged with its traceback. Shared by every layer that answers such an
    exception itself instead of letting it reach the server."""
    trace.get_current_span().record_exception(exc)
    if is_transient(exc):
        unexpected_log.warning(
            "dependency_unavailable", path=scope.get("path", ""), error=describe(exc)
        )
        return 503
    unexpected_log.exception("unhandled_error", path=scope.get("path", ""))
    return 500


def model_response(model: type[BaseModel], data: Any, status_code: int = 200) -> Response:
    """Serialize once: ``data`` (what a route built) validated against ``model`` and rendered
    to JSON by pydantic's serializer, as one pass.

    A route that returns a dict has it validated against its ``response_model``, dumped back
    to Python and then encoded by ``json.dumps``; a ``Response`` is sent as it is. Keep the
    ``response_model`` on the route for the OpenAPI document: the body is the same.
    Raises ``pydantic.ValidationError`` (a 500) when ``data`` does not fit ``model``."""
    return Response(
        model.model_validate(data).model_dump_json(),
        status_code=status_code,
        media_type="application/json",
    )


def json_response(data: Any, status_code: int = 200) -> Response:
    """Render ``data`` that a view already built in its response model's shape (dicts,
    lists, str, int, ``uuid.UUID``, aware ``datetime`` ...) to JSON with pydantic's
    serializer, without validating it again: the body is byte for byte what
    :func:`model_response` gives for the same data (the same serializer renders a UUID, a
    datetime as ``...Z`` for UTC), at a fraction of the CPU for a list of rows.

    For hot read routes whose data comes from the service's own read model; keep the route's
    ``response_model`` for the OpenAPI document, and a test that the two bodies agree.
    Raises ``pydantic_core.PydanticSerializationError`` for a value JSON cannot hold."""
    return Response(to_json(data), status_code=status_code, media_type="application/json")


class RequestContextMiddleware:
    """Echo or mint ``X-Request-ID``, bind it to every log line, and write the access log.

    It also answers an unexpected exception with the 500 problem itself and does not let it
    reach the server. Starlette's ``ServerErrorMiddleware`` would answer the same 500 and then
    re-raise, and uvicorn closes the connection of a request whose app raised. Behind the
    gateway's keep-alive pool that turned one client's 500 into a broken connection for the
    next request on it, often another client's: a 503 and a breaker failure (docs/gateway.md,
    "What counts"). Only an answer already started when the exception came is left to the
    server, which must close the connection to end it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500
        started = complete = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started, complete
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started and not complete:
                raise  # half an answer is out: only closing the connection can end it
            status = report_unexpected(scope, exc)
            if not started:
                # Once a complete answer is out (a background task failed after it), the
                # client has its answer; otherwise it gets the 503 or the 500 problem.
                answer = problem_response(
                    status,
                    "a dependency is unavailable"
                    if status == 503
                    else "an unexpected error occurred",
                    instance=scope.get("path", ""),
                )
                await answer(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            if path not in ("/healthz", "/readyz", "/metrics"):
                client = scope.get("client")
                access_log.info(
                    "http.request",
                    method=scope.get("method"),
                    path=path,
                    # as uvicorn resolved it from trusted hops only (FORWARDED_ALLOW_IPS)
                    client=str(client[0]) if client else None,
                    status=status,
                    duration_ms=round((time.perf_counter() - start) * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id")


def create_app(
    settings: BaseServiceSettings,
    runtime: Runtime,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    description: str = "",
    version: str = "0.1.0",
    docs: bool = True,
    middleware: Sequence[Middleware] = (),
    check_bodies: bool = True,
    allowed_methods: AllowedMethods | None = None,
) -> FastAPI:
    """Build a FastAPI app whose lifespan starts and stops ``runtime`` in order.

    ``middleware`` (e.g. CORS) runs inside the request context, so even a response it answers
    on its own, such as a CORS preflight, carries ``X-Request-ID`` and is in the access log.
    Inside it, ``InputGuard`` refuses text no store can take (422) before any route runs;
    ``check_bodies=False`` limits it to the path, query and headers (the gateway, which forwards
    bodies to services that check them: see ``chassis.input_guard``).

    HTTP method semantics (``chassis.methods``: HEAD, OPTIONS, 405 with Allow, 501) apply
    inside it, from the app's routes and ``allowed_methods`` (the paths the app serves other
    than through its routes: the gateway's proxied table)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop(settings.SHUTDOWN_TIMEOUT_SECONDS)

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN; ours is served locally
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.health = runtime.health
    app.state.runtime = runtime
    app.state.settings = settings
    install_problem_handlers(app)
    document_problems(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    if docs:
        app.include_router(swagger_ui.router)

        @app.get("/docs", include_in_schema=False)
        async def swagger_ui_docs() -> HTMLResponse:
            return swagger_ui.swagger_ui_page(f"{title} - Swagger UI", "/openapi.json")

    for router in routers:
        app.include_router(router)
    # Innermost: the input guard, so its refusal still carries X-Request-ID, CORS headers and
    # metrics, and a method the path does not allow is a 405 before any input is read.
    app.add_middleware(InputGuard, check_bodies=check_bodies)
    known: AllowedMethods = route_methods(lambda: app.router.routes)
    if allowed_methods is not None:
        known = combined(known, allowed_methods)
    # inside CORS: a preflight is answered before a method is judged
    app.add_middleware(MethodSemanticsMiddleware, allowed=known)
    for extra in reversed(middleware):  # the first one listed is the outermost of them
        app.add_middleware(extra.cls, *extra.args, **extra.kwargs)
    app.add_middleware(metrics.MetricsMiddleware, service=settings.SERVICE_NAME)
    app.add_middleware(RequestContextMiddleware)
    instrument_app(app)
    return app
