"""Saga participant handlers: ``saga.member.commands`` messages translated into service-layer calls.

Registered with chassis.saga.SagaParticipant, which applies each command once per
(saga id, command, attempt), injects faults and replies on ``saga.replies`` via the outbox. A
business refusal (or an unreadable payload) becomes a FAILURE reply through CommandRejected.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, Field, StrictInt

from chassis.saga import CommandHandler, CommandRejected, SagaCommand, command_payload
from member.domain import commands
from member.domain.errors import MemberError
from member.service_layer import saga_steps
from member.service_layer.ports import TokenDenyList
from member.service_layer.unit_of_work import MemberUnitOfWork

C = TypeVar("C")


class MemberPayload(BaseModel):
    """Payload of StartWithdrawal, CancelWithdrawal and CompleteWithdrawal."""

    member_id: uuid.UUID


class PointsPayload(BaseModel):
    """Payload of TransferPoints and RefundPoints: ``amount`` points (a whole number, never a
    boolean or a numeric string) move between two members for ``question_id``."""

    from_member_id: uuid.UUID
    to_member_id: uuid.UUID
    amount: StrictInt
    question_id: str = Field(min_length=1, max_length=64)


def _member_id(command: SagaCommand) -> uuid.UUID:
    return command_payload(MemberPayload, command).member_id


def _transfer(command: SagaCommand) -> commands.TransferPoints:
    p = command_payload(PointsPayload, command)
    return commands.TransferPoints(
        saga_id=command.saga_id,
        from_member_id=p.from_member_id,
        to_member_id=p.to_member_id,
        amount=p.amount,
        question_id=p.question_id,
    )


def _refund(command: SagaCommand) -> commands.RefundPoints:
    p = command_payload(PointsPayload, command)
    return commands.RefundPoints(
        saga_id=command.saga_id,
        from_member_id=p.from_member_id,
        to_member_id=p.to_member_id,
        amount=p.amount,
        question_id=p.question_id,
    )


def _handler(
    parse: Callable[[SagaCommand], C],
    use_case: Callable[[MemberUnitOfWork, C], Awaitable[dict[str, Any]]],
) -> CommandHandler[MemberUnitOfWork]:
    async def handle(uow: MemberUnitOfWork, command: SagaCommand) -> Mapping[str, Any]:
        try:
            return await use_case(uow, parse(command))
        except MemberError as exc:
            raise CommandRejected(str(exc)) from exc

    return handle


def build_handlers(deny_list: TokenDenyList) -> dict[str, CommandHandler[MemberUnitOfWork]]:
    """The handlers by command type; ``deny_list`` is where CompleteWithdrawal refuses the
    member's access tokens (``chassis.token_denylist``)."""

    async def complete(uow: MemberUnitOfWork, cmd: commands.CompleteWithdrawal) -> dict[str, Any]:
        return await saga_steps.complete_withdrawal(uow, cmd, deny_list)

    return {
        "StartWithdrawal": _handler(
            lambda c: commands.StartWithdrawal(c.saga_id, _member_id(c)),
            saga_steps.start_withdrawal,
        ),
        "CancelWithdrawal": _handler(
            lambda c: commands.CancelWithdrawal(c.saga_id, _member_id(c)),
            saga_steps.cancel_withdrawal,
        ),
        "CompleteWithdrawal": _handler(
            lambda c: commands.CompleteWithdrawal(c.saga_id, _member_id(c)), complete
        ),
        "TransferPoints": _handler(_transfer, saga_steps.transfer),
        # TransferPoints is now the pivot of answer-acceptance and no saga sends RefundPoints.
        # The handler stays so that a RefundPoints an earlier definition left in flight, or
        # parked in saga.member.commands.dlq for an operator, can still be applied (exactly
        # once, by saga id).
        "RefundPoints": _handler(_refund, saga_steps.refund),
    }
