"""Domain service: moving points between two members for a saga, and undoing exactly that move.

Only member has it: points are member data, moved by the answer-acceptance saga's pivot.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from member.domain import errors
from member.domain.events import PointsRefunded, PointsTransferred
from member.domain.model import Member, utcnow


@dataclass(eq=False)
class PointTransfer:
    """What one answer-acceptance saga moved, kept by saga id so its compensation can undo it."""

    saga_id: str
    from_member_id: uuid.UUID
    to_member_id: uuid.UUID
    amount: int
    question_id: str
    transferred_at: dt.datetime
    refunded_at: dt.datetime | None = None

    @property
    def is_refunded(self) -> bool:
        return self.refunded_at is not None


def transfer_points(
    *,
    saga_id: str,
    payer: Member,
    payee: Member,
    amount: int,
    question_id: str,
    now: dt.datetime | None = None,
) -> tuple[PointTransfer, PointsTransferred]:
    """Pay a bounty: refused when the payer's balance is short or the payee is not ACTIVE."""
    if payer.id == payee.id:
        raise errors.InvalidTransfer("a member cannot pay points to themselves")
    if amount < 0:
        raise errors.InvalidTransfer("amount must not be negative")
    if not payee.is_active:
        raise errors.InvalidStateTransition(f"the receiving member is {payee.status}")
    payer.debit(amount)
    payee.credit(amount)
    when = now or utcnow()
    transfer = PointTransfer(
        saga_id=saga_id,
        from_member_id=payer.id,
        to_member_id=payee.id,
        amount=amount,
        question_id=question_id,
        transferred_at=when,
    )
    event = PointsTransferred(
        saga_id=saga_id,
        from_member_id=payer.id,
        to_member_id=payee.id,
        amount=amount,
        question_id=question_id,
        occurred_at=when,
    )
    return transfer, event


def refund_points(
    transfer: PointTransfer, *, payer: Member, payee: Member, now: dt.datetime | None = None
) -> PointsRefunded | None:
    """Move the transfer's amount back (from the payee to the payer); None if already refunded."""
    if transfer.is_refunded:
        return None
    if payer.id != transfer.from_member_id or payee.id != transfer.to_member_id:
        raise errors.InvalidTransfer("the refund does not match the transfer")
    payee.debit(transfer.amount)
    payer.credit(transfer.amount)
    when = now or utcnow()
    transfer.refunded_at = when
    return PointsRefunded(
        saga_id=transfer.saga_id,
        from_member_id=transfer.from_member_id,
        to_member_id=transfer.to_member_id,
        amount=transfer.amount,
        question_id=transfer.question_id,
        occurred_at=when,
    )
