"""Error mapping: a domain refusal leaves as RFC 9457 problem+json with its HTTP status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chassis.problems import problem_response
from qna.domain.errors import DomainError, InvalidState, InvalidValue, NotAllowed, NotFound

STATUS_BY_ERROR: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidValue, 422),
    (NotAllowed, 403),
    (NotFound, 404),
    (InvalidState, 409),
)


def install_domain_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
        status = next((s for kind, s in STATUS_BY_ERROR if isinstance(exc, kind)), 409)
        return problem_response(status, str(exc), instance=request.url.path)
