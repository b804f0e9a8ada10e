"""Adapter: qna's synchronous acceptance pre-check, so a plainly invalid accept is refused before a saga starts."""

from __future__ import annotations

import uuid
from typing import Protocol

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from chassis.http import RETRY_STATUSES
from chassis.logging import get_logger
from chassis.problems import Problem, ServiceUnavailable, Unauthorized

log = get_logger("saga.qna")

#: qna's refusals the caller sees as they are (problem+json with qna's detail).
RELAYED_STATUSES = frozenset({401, 403, 404, 409})


class AcceptanceCheck(BaseModel):
    """qna's view of the acceptance, at the time of the check."""

    question_id: uuid.UUID
    answer_id: uuid.UUID
    asker_id: uuid.UUID
    answerer_id: uuid.UUID
    bounty: int
    status: str


class AcceptanceChecks(Protocol):
    """Port: may this caller accept this answer?"""

    async def check(
        self, question_id: uuid.UUID, answer_id: uuid.UUID, bearer_token: str
    ) -> AcceptanceCheck: ...


class HttpAcceptanceChecks:
    """``GET {QNA_URL}/internal/questions/{qid}/answers/{aid}/acceptance-check`` with the
    caller's token; qna's 401/403/404/409 are relayed, a 500 (or another 5xx that does not say
    qna is down) stays a 500, anything else is a 503.

    A 500 is qna failing on this one request while it serves the others. Turned into a 503 it
    would tell the gateway's breaker that the saga service is down, and a client repeating
    the request would open the circuit for every client (docs/CONVENTIONS.md "Fairness")."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def check(
        self, question_id: uuid.UUID, answer_id: uuid.UUID, bearer_token: str
    ) -> AcceptanceCheck:
        headers = {"Authorization": f"Bearer {bearer_token}"}
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            headers["X-Request-ID"] = str(request_id)
        path = f"/internal/questions/{question_id}/answers/{answer_id}/acceptance-check"
        try:
            response = await self.client.get(path, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("qna.precheck_unreachable", error=f"{type(exc).__name__}: {exc}")
            raise ServiceUnavailable("qna is unavailable; try again later") from exc
        if response.status_code == 401:
            raise Unauthorized(_detail(response))
        if response.status_code in RELAYED_STATUSES:
            raise Problem(_detail(response), status=response.status_code)
        if response.status_code >= 500 and response.status_code not in RETRY_STATUSES:
            log.warning("qna.precheck_error", status=response.status_code)
            raise Problem("qna could not check this acceptance", status=500)
        if response.status_code != 200:
            log.warning("qna.precheck_failed", status=response.status_code)
            raise ServiceUnavailable("qna is unavailable; try again later")
        try:
            return AcceptanceCheck.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            log.warning("qna.precheck_unreadable", error=str(exc)[:300])
            raise ServiceUnavailable("qna answered the pre-check unreadably") from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    return "the answer cannot be accepted"
