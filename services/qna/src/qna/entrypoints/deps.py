"""API dependencies: ``Annotated`` aliases for what routes need, taken from the app's composition root."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chassis.auth import CurrentPrincipal
from qna.service_layer.handlers import Caller
from qna.service_layer.unit_of_work import QnaUnitOfWork


async def get_uow(request: Request) -> QnaUnitOfWork:
    uow: QnaUnitOfWork = request.app.state.uow_factory()
    return uow


async def get_caller(principal: CurrentPrincipal) -> Caller:
    """The verified caller (401 without a valid bearer token)."""
    return Caller(id=principal.id, is_admin=principal.is_admin)


Uow = Annotated[QnaUnitOfWork, Depends(get_uow)]
CallerDep = Annotated[Caller, Depends(get_caller)]
