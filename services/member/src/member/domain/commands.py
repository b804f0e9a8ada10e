"""Commands: what a caller asks the member context to do (imperative names).

Only member has it: its use cases take these dataclasses so that the unit tests can call them
against the fakes of ``service_layer/ports.py``; board and qna pass plain values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RegisterMember:
    email: str
    password: str
    nickname: str


@dataclass(frozen=True)
class ChangeProfile:
    member_id: uuid.UUID
    nickname: str | None = None
    password: str | None = None
    current_password: str | None = None


@dataclass(frozen=True)
class LogIn:
    email: str
    password: str


@dataclass(frozen=True)
class RefreshSession:
    refresh_token: str


@dataclass(frozen=True)
class LogOut:
    refresh_token: str


@dataclass(frozen=True)
class StartWithdrawal:
    saga_id: str
    member_id: uuid.UUID


@dataclass(frozen=True)
class CancelWithdrawal:
    saga_id: str
    member_id: uuid.UUID


@dataclass(frozen=True)
class CompleteWithdrawal:
    saga_id: str
    member_id: uuid.UUID


@dataclass(frozen=True)
class TransferPoints:
    saga_id: str
    from_member_id: uuid.UUID
    to_member_id: uuid.UUID
    amount: int
    question_id: str


@dataclass(frozen=True)
class RefundPoints:
    saga_id: str
    from_member_id: uuid.UUID
    to_member_id: uuid.UUID
    amount: int
    question_id: str
