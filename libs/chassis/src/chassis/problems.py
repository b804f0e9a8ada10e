"""Error handling: every error leaves as RFC 9457 application/problem+json, never a bare 500."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chassis.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


class Problem(Exception):
    """An expected failure with an HTTP status; raise it from routes or the service layer."""

    status: int = 400
    title: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(Problem):
    status = 400


class Unauthorized(Problem):
    status = 401

    def __init__(self, detail: str = "a valid bearer token is required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(Problem):
    status = 403


class NotFound(Problem):
    status = 404


class Conflict(Problem):
    status = 409


class PayloadTooLarge(Problem):
    status = 413


class UriTooLong(Problem):
    status = 414


class Unprocessable(Problem):
    status = 422


class TooManyRequests(Problem):
    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class HeadersTooLarge(Problem):
    status = 431


class BadGateway(Problem):
    status = 502


class ServiceUnavailable(Problem):
    status = 503


class GatewayTimeout(Problem):
    status = 504


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return JSONResponse(
        jsonable_encoder(body), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


#: The bounds of a constraint a client may show ("at least 8 characters"): numbers only, so
#: an error's ``ctx`` never carries an exception object or the refused input.
LIMITS = ("min_length", "max_length", "ge", "gt", "le", "lt")


def _validation_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One ``errors[]`` entry: ``loc``, ``msg``, ``type`` (pydantic's error type) and, when
    the constraint has numeric bounds, ``ctx`` with them (``{"min_length": 8}``)."""
    entry: dict[str, Any] = {
        "loc": list(error.get("loc", ())),
        "msg": error.get("msg", ""),
        "type": error.get("type", ""),
    }
    ctx = error.get("ctx") or {}
    limits = {
        name: ctx[name]
        for name in LIMITS
        if isinstance(ctx.get(name), int | float) and not isinstance(ctx.get(name), bool)
    }
    if limits:
        entry["ctx"] = limits
    return entry


def install_problem_handlers(app: FastAPI) -> None:
    """Map every exception family to a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            title=exc.title,
            instance=request.url.path,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_validation_error(e) for e in exc.errors()]
        return problem_response(
            422,
            "the request is not valid",
            instance=request.url.path,
            extra={"errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            exc.status_code,
            str(exc.detail) if exc.detail else None,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem_response(500, "an unexpected error occurred", instance=request.url.path)
