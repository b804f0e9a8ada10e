"""Domain events: facts the member context records and publishes on ``member.events`` (past tense)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event; the body of the integration event is its fields."""

    occurred_at: dt.datetime = field(default_factory=_now)

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def key(self) -> str:
        """Kafka key: the aggregate id, so one member's events stay in order."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class MemberRegistered(Event):
    member_id: uuid.UUID
    nickname: str
    role: str
    profile_version: int

    @property
    def key(self) -> str:
        return str(self.member_id)


@dataclass(frozen=True, kw_only=True)
class MemberProfileChanged(Event):
    member_id: uuid.UUID
    nickname: str
    #: Increases with every change: consumers keep the nickname with the highest version.
    profile_version: int

    @property
    def key(self) -> str:
        return str(self.member_id)


@dataclass(frozen=True, kw_only=True)
class MemberWithdrawalStarted(Event):
    """ACTIVE → WITHDRAWING (step 1 of member-withdrawal): board and qna refuse the member's
    writes from now on (docs/sagas.md), without waiting for their own step of the saga."""

    member_id: uuid.UUID
    saga_id: str

    @property
    def key(self) -> str:
        return str(self.member_id)


@dataclass(frozen=True, kw_only=True)
class MemberWithdrawalCancelled(Event):
    """WITHDRAWING → ACTIVE (CancelWithdrawal, the compensation of step 1): the refusal that
    ``MemberWithdrawalStarted`` with the same ``saga_id`` set is lifted."""

    member_id: uuid.UUID
    saga_id: str

    @property
    def key(self) -> str:
        return str(self.member_id)


@dataclass(frozen=True, kw_only=True)
class MemberWithdrawn(Event):
    """WITHDRAWING → WITHDRAWN (the pivot): the member is refused for good."""

    member_id: uuid.UUID

    @property
    def key(self) -> str:
        return str(self.member_id)


@dataclass(frozen=True, kw_only=True)
class PointsTransferred(Event):
    saga_id: str
    from_member_id: uuid.UUID
    to_member_id: uuid.UUID
    amount: int
    question_id: str

    @property
    def key(self) -> str:
        return str(self.from_member_id)


@dataclass(frozen=True, kw_only=True)
class PointsRefunded(Event):
    """The refund moves ``amount`` back from ``to_member_id`` to ``from_member_id``."""

    saga_id: str
    from_member_id: uuid.UUID
    to_member_id: uuid.UUID
    amount: int
    question_id: str

    @property
    def key(self) -> str:
        return str(self.from_member_id)
