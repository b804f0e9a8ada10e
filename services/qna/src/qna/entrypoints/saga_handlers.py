"""Saga command handlers: qna's commands on ``saga.qna.commands``, applied by ``chassis.saga.SagaParticipant``.

Thin: each reads its payload (docs/CONVENTIONS.md) and calls a step in the service layer. A
payload that cannot be read is refused (a FAILURE reply), never a poison message.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from chassis.saga import CommandHandler, SagaCommand, command_payload
from qna.service_layer import saga_steps
from qna.service_layer.unit_of_work import QnaUnitOfWork


class ReserveAcceptancePayload(BaseModel):
    question_id: uuid.UUID
    answer_id: uuid.UUID
    asker_id: uuid.UUID


class CancelAcceptancePayload(BaseModel):
    question_id: uuid.UUID
    answer_id: uuid.UUID | None = None


class ConfirmAcceptancePayload(BaseModel):
    question_id: uuid.UUID
    answer_id: uuid.UUID


class AuthorPayload(BaseModel):
    member_id: uuid.UUID


async def reserve_acceptance(uow: QnaUnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    p = command_payload(ReserveAcceptancePayload, command)
    return await saga_steps.reserve_acceptance(
        uow, command.saga_id, p.question_id, p.answer_id, p.asker_id
    )


async def cancel_acceptance(uow: QnaUnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    p = command_payload(CancelAcceptancePayload, command)
    return await saga_steps.cancel_acceptance(uow, command.saga_id, p.question_id)


async def confirm_acceptance(uow: QnaUnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    p = command_payload(ConfirmAcceptancePayload, command)
    return await saga_steps.confirm_acceptance(uow, command.saga_id, p.question_id, p.answer_id)


async def retire_author(uow: QnaUnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    p = command_payload(AuthorPayload, command)
    return await saga_steps.retire_author(uow, command.saga_id, p.member_id)


async def restore_author(uow: QnaUnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    p = command_payload(AuthorPayload, command)
    return await saga_steps.restore_author(uow, command.saga_id, p.member_id)


HANDLERS: dict[str, CommandHandler[QnaUnitOfWork]] = {
    "ReserveAcceptance": reserve_acceptance,
    "CancelAcceptance": cancel_acceptance,
    "ConfirmAcceptance": confirm_acceptance,
    "RetireAuthor": retire_author,
    "RestoreAuthor": restore_author,
}
