"""Internal query API: the acceptance pre-check the saga service calls before it starts a saga.

Not routed by the gateway and not in the public OpenAPI; the saga service forwards the
caller's bearer token, so "is the caller the asker" is decided here, by the owner of the data.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from qna import views
from qna.entrypoints.deps import CallerDep, Uow
from qna.entrypoints.schemas import AcceptanceCheckPublic
from qna.service_layer import handlers

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


@router.get(
    "/questions/{question_id}/answers/{answer_id}/acceptance-check",
    response_model=AcceptanceCheckPublic,
)
async def acceptance_check(
    question_id: uuid.UUID, answer_id: uuid.UUID, caller: CallerDep, uow: Uow
) -> views.Json:
    """200 if the caller may start accepting this answer; 403, 404 or 409 otherwise."""
    return await handlers.check_acceptance(uow, caller, question_id, answer_id)
