"""Error handling at the edge: each domain refusal becomes one RFC 9457 problem with a fitting status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chassis.problems import problem_response
from member.domain import errors

STATUS: dict[type[errors.MemberError], int] = {
    errors.InvalidInput: 422,
    errors.CurrentPasswordRequired: 422,
    errors.InvalidTransfer: 422,
    errors.DuplicateEmail: 409,
    errors.DuplicateNickname: 409,
    errors.InvalidStateTransition: 409,
    errors.InsufficientPoints: 409,
    errors.MemberNotFound: 404,
    errors.InvalidCredentials: 401,
    errors.InvalidRefreshToken: 401,
    errors.AccountNotActive: 403,
    errors.WrongCurrentPassword: 403,
    errors.LoginLocked: 429,
}


def status_for(exc: errors.MemberError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def install_error_mapping(app: FastAPI) -> None:
    @app.exception_handler(errors.MemberError)
    async def _member_error(request: Request, exc: errors.MemberError) -> JSONResponse:
        status = status_for(exc)
        headers: dict[str, str] = {}
        if isinstance(exc, errors.LoginLocked):
            headers["Retry-After"] = str(max(1, exc.retry_after))
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        extra = (
            {"errors": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]}
            if status == 422
            else None
        )
        return problem_response(
            status, str(exc), instance=request.url.path, headers=headers, extra=extra
        )
