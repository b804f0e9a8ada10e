"""API dependencies: ``Annotated`` aliases for the unit of work, read sessions, the caller and keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from board.adapters.first_page_cache import FirstPageCache
from board.adapters.view_counter import ViewCounter
from board.domain.model import Actor
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.auth import AdminPrincipal, CurrentPrincipal


async def _uow(request: Request) -> BoardUnitOfWork:
    uow: BoardUnitOfWork = request.app.state.uow_factory()
    return uow


async def _view_counter(request: Request) -> ViewCounter:
    counter: ViewCounter = request.app.state.view_counter
    return counter


async def _first_page_cache(request: Request) -> FirstPageCache | None:
    cache: FirstPageCache | None = request.app.state.first_page_cache
    return cache


async def _actor(principal: CurrentPrincipal) -> Actor:
    return Actor(principal.id, principal.is_admin)


async def _admin(principal: AdminPrincipal) -> Actor:
    return Actor(principal.id, principal.is_admin)


UnitOfWorkDep = Annotated[BoardUnitOfWork, Depends(_uow)]
ViewCounterDep = Annotated[ViewCounter, Depends(_view_counter)]
#: The first-page cache, or None when ``FIRST_PAGE_CACHE_SECONDS`` is 0.
FirstPageCacheDep = Annotated[FirstPageCache | None, Depends(_first_page_cache)]
#: The verified caller (401 without a valid token).
ActorDep = Annotated[Actor, Depends(_actor)]
#: The verified caller, who must be an admin (403 otherwise).
AdminDep = Annotated[Actor, Depends(_admin)]
