"""HTTP API of the orchestrator: start the two sagas, show a saga, set fault flags (admin)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from chassis.auth import AdminPrincipal, CurrentPrincipal
from chassis.faults import SERVICES, Fault, FaultMode, kebab
from chassis.idempotency import IdempotencyKeyHeader, IdempotentRequest, request_fingerprint
from chassis.openapi import problems
from chassis.problems import NotFound, Unprocessable
from saga.definitions import ANSWER_ACCEPTANCE, DEFINITIONS, MEMBER_WITHDRAWAL
from saga.engine import StartedSaga
from saga.entrypoints.deps import Engine, Faults, Qna
from saga.entrypoints.schemas import (
    FaultPublic,
    FaultsPublic,
    FaultUpdate,
    SagaPublic,
    SagaStarted,
    SagaStepPublic,
)

router = APIRouter(tags=["saga"])
#: Bounds of the fault-flag path: longer than any service or command name that exists.
SERVICE_NAME_MAX = 20
COMMAND_NAME_MAX = 100


def _accepted(response: Response, started: StartedSaga) -> SagaStarted:
    response.status_code = started.status_code
    response.headers["Location"] = f"/api/sagas/{started.saga_id}"
    return SagaStarted(saga_id=uuid.UUID(started.saga_id))


def _request(scope: str, key: str | None, body: Mapping[str, Any]) -> IdempotentRequest | None:
    return None if key is None else IdempotentRequest(scope, key, request_fingerprint(body))


@router.delete("/api/members/me", status_code=202, response_model=SagaStarted)
async def withdraw_me(
    principal: CurrentPrincipal, engine: Engine, key: IdempotencyKeyHeader, response: Response
) -> SagaStarted:
    """Withdraw the caller's membership: starts the member-withdrawal saga."""

    async def data() -> dict[str, Any]:
        return {"member_id": str(principal.id)}

    started = await engine.start(
        MEMBER_WITHDRAWAL.name,
        principal.id,
        data,
        request=_request(f"saga:withdraw:{principal.id}", key, {}),
    )
    return _accepted(response, started)


@router.post(
    "/api/questions/{question_id}/answers/{answer_id}/accept",
    status_code=202,
    response_model=SagaStarted,
    responses=problems(503),  # qna's synchronous pre-check could not be had
)
async def accept_answer(
    question_id: uuid.UUID,
    answer_id: uuid.UUID,
    principal: CurrentPrincipal,
    engine: Engine,
    qna: Qna,
    key: IdempotencyKeyHeader,
    response: Response,
) -> SagaStarted:
    """Accept an answer: qna's pre-check, then the answer-acceptance saga."""

    async def data() -> dict[str, Any]:
        check = await qna.check(question_id, answer_id, principal.token)
        return {
            "question_id": str(check.question_id),
            "answer_id": str(check.answer_id),
            "asker_id": str(check.asker_id),
            "answerer_id": str(check.answerer_id),
            "bounty": check.bounty,
        }

    started = await engine.start(
        ANSWER_ACCEPTANCE.name,
        principal.id,
        data,
        request=_request(
            f"saga:accept:{principal.id}",
            key,
            {"question_id": str(question_id), "answer_id": str(answer_id)},
        ),
    )
    return _accepted(response, started)


@router.get("/api/sagas/{saga_id}", response_model=SagaPublic)
async def get_saga(saga_id: uuid.UUID, principal: CurrentPrincipal, engine: Engine) -> SagaPublic:
    """A saga and its steps, for the member who started it or an admin."""
    stored = await engine.get(str(saga_id))
    if stored is None or not (principal.is_admin or stored.initiator_id == principal.id):
        raise NotFound("no such saga")
    state = stored.state
    definition = DEFINITIONS[state.type]
    return SagaPublic(
        id=uuid.UUID(state.id),
        type=state.type,
        status=state.status.value,
        steps=[
            SagaStepPublic(name=log.name, status=log.status, kind=step.kind, retries=log.retries)
            for log, step in zip(state.steps, definition.steps, strict=True)
        ],
        failure_reason=state.failure_reason,
        started_at=state.started_at,
        ended_at=state.ended_at,
    )


def known_commands(service: str) -> list[str]:
    """Every participant command of ``service`` (kebab case) that some saga sends."""
    return sorted({kebab(c) for d in DEFINITIONS.values() for c in d.commands_of(service)})


@router.put("/api/admin/faults/{service}/{command}", response_model=FaultPublic)
async def set_fault(
    faults: Faults,
    service: Annotated[str, Path(max_length=SERVICE_NAME_MAX)],
    command: Annotated[str, Path(max_length=COMMAND_NAME_MAX)],
    body: FaultUpdate,
    _: AdminPrincipal,
) -> FaultPublic:
    """Make a participant command fail or be delayed, or switch that off (admin only)."""
    if service not in SERVICES:
        raise Unprocessable(f"service must be one of {', '.join(SERVICES)}")
    commands = known_commands(service)
    if command not in commands:
        raise Unprocessable(f"{service} has no saga command {command!r}; known: {commands}")
    delay_ms = body.delay_ms if body.mode is FaultMode.DELAY else 0
    await faults.set(service, command, Fault(body.mode, delay_ms))
    return FaultPublic(service=service, command=command, mode=body.mode, delay_ms=delay_ms)


@router.get("/api/admin/faults", response_model=FaultsPublic)
async def list_faults(faults: Faults, _: AdminPrincipal) -> FaultsPublic:
    """The fault flags that are on, and the commands a flag can be set on (admin only)."""
    items = []
    commands = {service: known_commands(service) for service in SERVICES}
    for service, names in commands.items():
        for command in names:
            fault = await faults.get(service, command)
            if fault is not None:
                items.append(
                    FaultPublic(
                        service=service, command=command, mode=fault.mode, delay_ms=fault.delay_ms
                    )
                )
    return FaultsPublic(items=items, commands=commands)
