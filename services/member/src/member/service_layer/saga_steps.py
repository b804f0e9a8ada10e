"""Saga participant use cases: withdrawal steps and point transfers, each inside the caller's transaction.

The saga participant (chassis.saga.SagaParticipant) opens the unit of work, logs the command
and stages the reply; these functions only apply the effect. Each is idempotent by saga id
(a retried attempt of the same saga has no second effect), and each compensation succeeds as a
no-op when its forward command never took effect. Like board's and qna's steps, each takes the
unit of work first; member passes its values as the command dataclasses of
``member.domain.commands`` (its use cases are unit-tested with those).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from member.domain import errors
from member.domain.commands import (
    CancelWithdrawal,
    CompleteWithdrawal,
    RefundPoints,
    StartWithdrawal,
    TransferPoints,
)
from member.domain.model import utcnow
from member.domain.points import refund_points, transfer_points
from member.service_layer.handlers import publish_events
from member.service_layer.ports import TokenDenyList, UnitOfWork


async def start_withdrawal(uow: UnitOfWork, cmd: StartWithdrawal) -> dict[str, Any]:
    """ACTIVE → WITHDRAWING: logins and refreshes are refused from now on."""
    member = await uow.members.get(cmd.member_id, for_update=True)
    if member is None:
        raise errors.MemberNotFound(f"member {cmd.member_id} not found")
    member.start_withdrawal(cmd.saga_id)
    await uow.members.save(member)
    # MemberWithdrawalStarted, in this transaction: board and qna refuse the member's writes
    # from step 1 on, not only from their own step (docs/sagas.md).
    await publish_events(uow, member.pull_events())
    return {"member_id": str(member.id), "status": member.status.value}


async def cancel_withdrawal(uow: UnitOfWork, cmd: CancelWithdrawal) -> dict[str, Any]:
    """Compensation of StartWithdrawal: back to ACTIVE (a no-op if this saga changed nothing)."""
    member = await uow.members.get(cmd.member_id, for_update=True)
    if member is None or not member.cancel_withdrawal(cmd.saga_id):
        return {"cancelled": False}
    await uow.members.save(member)
    await publish_events(uow, member.pull_events())  # MemberWithdrawalCancelled: lift the refusal
    return {"cancelled": True}


async def complete_withdrawal(
    uow: UnitOfWork,
    cmd: CompleteWithdrawal,
    deny_list: TokenDenyList,
    *,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The pivot: erase personal data, status WITHDRAWN, revoke every refresh token, and put
    the member on the token deny-list so the access tokens already issued stop working too.

    The deny-list entry is written before the caller's transaction (with the SUCCESS reply)
    commits, so a COMPLETED saga implies the entry exists. A Redis error propagates: it is a
    transient failure, the transaction rolls back and the command is tried again once Redis
    is back (the pivot is never reported before its effect is whole)."""
    when = now or utcnow()
    member = await uow.members.get(cmd.member_id, for_update=True)
    if member is None:
        raise errors.MemberNotFound(f"member {cmd.member_id} not found")
    if member.complete_withdrawal(cmd.saga_id, when):
        await uow.members.save(member)
        await uow.refresh_tokens.revoke_all_for_member(member.id, when)
        await publish_events(uow, member.pull_events())
    # Also when this saga had already completed it: a repeat re-writes a lost entry. The
    # member's last change is the withdrawal itself.
    await deny_list.deny_member(member.id, member.updated_at)
    return {"member_id": str(member.id), "status": member.status.value}


async def transfer(
    uow: UnitOfWork, cmd: TransferPoints, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Pay the bounty from the asker to the answerer (답변 채택 step 2)."""
    if cmd.amount < 0:
        raise errors.InvalidTransfer("amount must not be negative")
    if cmd.amount == 0:
        return {"transferred": 0}
    previous = await uow.transfers.get(cmd.saga_id)
    if previous is not None:
        return {"transferred": previous.amount}
    members = await uow.members.lock_many([cmd.from_member_id, cmd.to_member_id])
    payer = members.get(cmd.from_member_id)
    payee = members.get(cmd.to_member_id)
    if payer is None or payee is None:
        raise errors.MemberNotFound("the asker or the answerer does not exist")
    record, event = transfer_points(
        saga_id=cmd.saga_id,
        payer=payer,
        payee=payee,
        amount=cmd.amount,
        question_id=cmd.question_id,
        now=now,
    )
    await uow.members.save(payer)
    await uow.members.save(payee)
    await uow.transfers.add(record)
    await publish_events(uow, [event])
    return {"transferred": cmd.amount}


async def refund(
    uow: UnitOfWork, cmd: RefundPoints, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Undo exactly what this saga's TransferPoints moved, if anything.

    No saga sends it any more (TransferPoints is the pivot of answer-acceptance, docs/sagas.md); it
    serves RefundPoints commands of the earlier definition still in flight or parked in the DLQ.
    If the answerer has already spent the points the refund is refused (points never go
    negative); the saga then ends FAILED for an operator to settle."""
    record = await uow.transfers.get(cmd.saga_id)
    if record is None:
        return {"refunded": 0}
    if record.is_refunded:
        return {"refunded": record.amount}
    members = await uow.members.lock_many([record.from_member_id, record.to_member_id])
    payer = members.get(record.from_member_id)
    payee = members.get(record.to_member_id)
    if payer is None or payee is None:
        raise errors.MemberNotFound("the asker or the answerer no longer exists")
    event = refund_points(record, payer=payer, payee=payee, now=now)
    if event is not None:
        await uow.members.save(payer)
        await uow.members.save(payee)
        await uow.transfers.save(record)
        await publish_events(uow, [event])
    return {"refunded": record.amount}
