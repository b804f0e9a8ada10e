"""Error mapping: domain and service-layer refusals leave as RFC 9457 problem documents."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from board.domain.errors import InvalidValue, NotPermitted
from board.service_layer.handlers import NotFound, SlugTaken
from chassis.problems import problem_response

STATUS_OF: dict[type[Exception], int] = {
    NotPermitted: 403,
    NotFound: 404,
    SlugTaken: 409,
    InvalidValue: 422,
}


def install_error_handlers(app: FastAPI) -> None:
    async def refused(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(STATUS_OF[type(exc)], str(exc), instance=request.url.path)

    for exc_type in STATUS_OF:
        app.add_exception_handler(exc_type, refused)
