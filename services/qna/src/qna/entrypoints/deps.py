"""API dependencies: ``Annotated`` aliases for what routes need, taken from the app's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.auth import CurrentPrincipal
from chassis.idempotency import IdempotentRequest
from qna.service_layer.handlers import Caller
from qna.service_layer.unit_of_work import QnaUnitOfWork


def get_uow(request: Request) -> QnaUnitOfWork:
    uow: QnaUnitOfWork = request.app.state.uow_factory()
    return uow


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for read-only queries (views)."""
    async with request.app.state.sessions() as session:
        yield session


def get_caller(principal: CurrentPrincipal) -> Caller:
    """The verified caller (401 without a valid bearer token)."""
    return Caller(id=principal.id, is_admin=principal.is_admin)


Uow = Annotated[QnaUnitOfWork, Depends(get_uow)]
ReadSession = Annotated[AsyncSession, Depends(get_read_session)]
CallerDep = Annotated[Caller, Depends(get_caller)]


def idempotent_request(
    request: Request, caller: Caller, key: str | None, body: BaseModel
) -> IdempotentRequest | None:
    """Scope a key to the caller, method and path; the body's fingerprint detects a reused key."""
    return IdempotentRequest.bind(
        key,
        caller=caller.id,
        method=request.method,
        path=request.url.path,
        body=body.model_dump(mode="json"),
    )
