"""API dependencies: ``Annotated`` aliases for what the routes need."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chassis.faults import FaultFlags
from chassis.problems import NotFound, ServiceUnavailable
from saga.engine import SagaEngine
from saga.qna import AcceptanceChecks


async def get_engine(request: Request) -> SagaEngine:
    engine: SagaEngine = request.app.state.engine
    return engine


async def get_qna(request: Request) -> AcceptanceChecks:
    qna: AcceptanceChecks | None = request.app.state.qna
    if qna is None:
        raise ServiceUnavailable("the qna client is not ready")
    return qna


async def enabled_faults(request: Request) -> FaultFlags:
    """The fault flags; the whole fault API is absent (404) unless FAULT_INJECTION=true."""
    faults: FaultFlags = request.app.state.faults
    if not faults.enabled:
        raise NotFound("fault injection is disabled")
    return faults


Engine = Annotated[SagaEngine, Depends(get_engine)]
Qna = Annotated[AcceptanceChecks, Depends(get_qna)]
Faults = Annotated[FaultFlags, Depends(enabled_faults)]
