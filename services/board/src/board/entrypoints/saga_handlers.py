"""Saga participant: the board's steps of member-withdrawal (AnonymizeAuthor and its compensation).

``chassis.saga.SagaParticipant`` applies each command once per (saga id, command, attempt),
checks the fault flags and replies through the outbox; these handlers only translate the
command into a ``board.service_layer.saga_steps`` call inside the participant's unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from board.service_layer import saga_steps
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.saga import CommandHandler, SagaCommand, command_payload


class AuthorCommandPayload(BaseModel):
    """Payload of AnonymizeAuthor and RestoreAuthor."""

    member_id: uuid.UUID


def _member_id(command: SagaCommand) -> uuid.UUID:
    return command_payload(AuthorCommandPayload, command).member_id


async def anonymize_author(uow: BoardUnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    return await saga_steps.anonymize_author(uow, command.saga_id, _member_id(command))


async def restore_author(uow: BoardUnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
    return await saga_steps.restore_author(uow, command.saga_id, _member_id(command))


HANDLERS: dict[str, CommandHandler[BoardUnitOfWork]] = {
    "AnonymizeAuthor": anonymize_author,
    "RestoreAuthor": restore_author,
}
