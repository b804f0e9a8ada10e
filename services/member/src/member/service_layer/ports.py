"""Ports: the interfaces the use cases need (repositories, unit of work, hashing, tokens, throttling).

Only member has this module, because only member's use cases are unit-tested with hand-written
fakes: sign-up, login, refresh-token rotation, the password-check throttles and the saga steps
run with no infrastructure in ``tests/unit/member/test_handlers.py`` (fakes in
``tests/unit/member/fakes.py``). board's and qna's use cases are shaped by SQL (row locks,
version guards) and are tested against PostgreSQL, so they use their unit of work directly. The
read model is not behind a port either: it is SQL merge rules (``service_layer/projector.py``),
proved against PostgreSQL by the convergence tests.

Adapters implement the ports against PostgreSQL, Redis, argon2 and JWT; the fakes implement them
in memory. Repositories are read-only properties of the unit of work so both kinds fit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from member.domain.model import Member
from member.domain.points import PointTransfer
from member.domain.sessions import RefreshToken


class MemberRepository(Protocol):
    async def add(self, member: Member) -> None: ...

    async def get(self, member_id: uuid.UUID, *, for_update: bool = False) -> Member | None: ...

    async def get_by_email(self, email: str) -> Member | None:
        """The member whose email has the text identity of ``email`` (``identity.canonical``;
        any case, normalization form or padding), or None."""
        ...

    async def lock_many(self, member_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Member]:
        """Lock several members in a fixed order (by id), so two transfers cannot deadlock."""
        ...

    async def email_taken(self, email: str) -> bool:
        """By text identity, like the unique index on ``email_canonical``."""
        ...

    async def nickname_taken(self, nickname: str, *, other_than: uuid.UUID | None = None) -> bool:
        """By text identity (case folded, NFC), like the unique index on ``nickname_canonical``."""
        ...

    async def save(self, member: Member) -> None: ...


class RefreshTokenRepository(Protocol):
    async def add(self, token: RefreshToken) -> None: ...

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        """The token, locked for this transaction (two refreshes of one token serialize)."""
        ...

    async def save(self, token: RefreshToken) -> None: ...

    async def revoke_family(self, family_id: uuid.UUID, now: dt.datetime) -> int: ...

    async def revoke_all_for_member(self, member_id: uuid.UUID, now: dt.datetime) -> int: ...


class PointTransferRepository(Protocol):
    async def get(self, saga_id: str) -> PointTransfer | None:
        """The transfer of one saga, locked for this transaction."""
        ...

    async def add(self, transfer: PointTransfer) -> None: ...

    async def save(self, transfer: PointTransfer) -> None: ...


@dataclass(frozen=True)
class StoredResult:
    status_code: int
    body: Any


class IdempotencyStore(Protocol):
    async def claim(self, scope: str, key: str, fingerprint: str) -> StoredResult | None:
        """Claim ``key`` in this transaction, or return what the first request answered."""
        ...

    async def complete(self, scope: str, key: str, status_code: int, body: Any) -> None: ...


class UnitOfWork(Protocol):
    """One business transaction: repositories and the outbox (``publish``)."""

    @property
    def members(self) -> MemberRepository: ...

    @property
    def refresh_tokens(self) -> RefreshTokenRepository: ...

    @property
    def transfers(self) -> PointTransferRepository: ...

    @property
    def idempotency(self) -> IdempotencyStore: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def publish(
        self, topic: str, event_type: str, key: str, data: Mapping[str, Any]
    ) -> uuid.UUID: ...


class TokenDenyList(Protocol):
    """Refuses a withdrawn member's access tokens at the gateway before they expire
    (``chassis.token_denylist``; docs/sagas.md: "refused everywhere (401)")."""

    async def deny_member(self, member_id: uuid.UUID, withdrawn_at: dt.datetime) -> None:
        """Raises on an infrastructure error (a transient failure for the caller)."""
        ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """False for a wrong password; with no hash it still spends the time of a check,
        so response times do not reveal which emails exist."""
        ...

    def needs_rehash(self, password_hash: str) -> bool: ...


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


class AccessTokenIssuer(Protocol):
    def issue(self, member_id: uuid.UUID, role: str) -> AccessToken: ...


class AttemptThrottle(Protocol):
    """At most N password checks per subject (an email at login, a member id for
    ``current_password``) per window. Each attempt is reserved *before* the check, atomically:
    reading the count first and recording the failure after the slow hash check would be a
    check-then-act race on a limit, letting any number of simultaneous guesses through."""

    async def reserve(self, subject: str) -> int | None:
        """Take one attempt: None when granted, else the seconds (≥ 1) until the window ends;
        the caller then refuses (429) without checking the password."""
        ...

    async def release(self, subject: str) -> None:
        """Hand back a reserved attempt that never reached the password check."""
        ...

    async def reset(self, subject: str) -> None:
        """The password was right: forget the attempts so far."""
        ...
