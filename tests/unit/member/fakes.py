"""In-memory fakes of the member service's own ports (repositories, unit of work, hashing, tokens)."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from member.domain.identity import canonical
from member.domain.model import Member
from member.domain.points import PointTransfer
from member.domain.sessions import RefreshToken
from member.service_layer.ports import AccessToken, StoredResult


@dataclass
class Store:
    """What the fake database holds; the unit of work copies it in and writes it back on commit."""

    members: dict[uuid.UUID, Member] = field(default_factory=dict)
    tokens: dict[uuid.UUID, RefreshToken] = field(default_factory=dict)
    transfers: dict[str, PointTransfer] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], tuple[str, StoredResult | None]] = field(
        default_factory=dict
    )
    outbox: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)


class FakeMembers:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, member: Member) -> None:
        self.store.members[member.id] = member

    async def get(self, member_id: uuid.UUID, *, for_update: bool = False) -> Member | None:
        return self.store.members.get(member_id)

    async def get_by_email(self, email: str) -> Member | None:
        key = canonical(email)
        return next((m for m in self.store.members.values() if m.email_canonical == key), None)

    async def lock_many(self, member_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Member]:
        return {i: self.store.members[i] for i in member_ids if i in self.store.members}

    async def email_taken(self, email: str) -> bool:
        return await self.get_by_email(email) is not None

    async def nickname_taken(self, nickname: str, *, other_than: uuid.UUID | None = None) -> bool:
        return any(
            m.nickname_canonical == canonical(nickname) and m.id != other_than
            for m in self.store.members.values()
        )

    async def save(self, member: Member) -> None:
        self.store.members[member.id] = member


class FakeRefreshTokens:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, token: RefreshToken) -> None:
        self.store.tokens[token.id] = token

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        return next((t for t in self.store.tokens.values() if t.token_hash == token_hash), None)

    async def save(self, token: RefreshToken) -> None:
        self.store.tokens[token.id] = token

    async def revoke_family(self, family_id: uuid.UUID, now: dt.datetime) -> int:
        return self._revoke(
            (t for t in self.store.tokens.values() if t.family_id == family_id), now
        )

    async def revoke_all_for_member(self, member_id: uuid.UUID, now: dt.datetime) -> int:
        return self._revoke(
            (t for t in self.store.tokens.values() if t.member_id == member_id), now
        )

    @staticmethod
    def _revoke(tokens: Iterable[RefreshToken], now: dt.datetime) -> int:
        count = 0
        for token in tokens:
            if token.revoked_at is None:
                token.revoked_at = now
                count += 1
        return count


class FakeTransfers:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, saga_id: str) -> PointTransfer | None:
        return self.store.transfers.get(saga_id)

    async def add(self, transfer: PointTransfer) -> None:
        self.store.transfers[transfer.saga_id] = transfer

    async def save(self, transfer: PointTransfer) -> None:
        self.store.transfers[transfer.saga_id] = transfer


class FakeIdempotency:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def claim(self, scope: str, key: str, fingerprint: str) -> StoredResult | None:
        found = self.store.idempotency.get((scope, key))
        if found is None:
            self.store.idempotency[(scope, key)] = (fingerprint, None)
            return None
        return found[1]

    async def complete(self, scope: str, key: str, status_code: int, body: Any) -> None:
        fingerprint, _ = self.store.idempotency[(scope, key)]
        self.store.idempotency[(scope, key)] = (fingerprint, StoredResult(status_code, body))


class FakeUnitOfWork:
    """Works on a deep copy of the store: nothing is visible unless ``commit()`` is called."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()
        self.commits = 0

    async def __aenter__(self) -> Self:
        self._work = copy.deepcopy(self.store)
        self.members = FakeMembers(self._work)
        self.refresh_tokens = FakeRefreshTokens(self._work)
        self.transfers = FakeTransfers(self._work)
        self.idempotency = FakeIdempotency(self._work)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        del self._work

    async def commit(self) -> None:
        for name in vars(self._work):
            setattr(self.store, name, getattr(self._work, name))
        self._work = copy.deepcopy(self.store)
        self.commits += 1

    async def publish(
        self, topic: str, event_type: str, key: str, data: Mapping[str, Any]
    ) -> uuid.UUID:
        self._work.outbox.append((topic, event_type, key, dict(data)))
        return uuid.uuid4()

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [d for (_, t, _, d) in self.store.outbox if event_type in (None, t)]


class FakePasswords:
    """``hashed:<password>``: enough to test the rules around hashing, not hashing itself."""

    def __init__(self) -> None:
        self.verified: list[str | None] = []
        self.outdated: set[str] = set()

    async def hash(self, password: str) -> str:
        return f"hashed:{password}"

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.verified.append(password_hash)
        return password_hash is not None and password_hash == f"hashed:{password}"

    def needs_rehash(self, password_hash: str) -> bool:
        return password_hash in self.outdated


class FakeDenyList:
    """The token deny-list port: withdrawn members and their withdrawal times."""

    def __init__(self) -> None:
        self.denied: dict[uuid.UUID, dt.datetime] = {}

    async def deny_member(self, member_id: uuid.UUID, withdrawn_at: dt.datetime) -> None:
        self.denied[member_id] = withdrawn_at


class FakeTokens:
    def __init__(self) -> None:
        self.issued: list[tuple[uuid.UUID, str]] = []

    def issue(self, member_id: uuid.UUID, role: str) -> AccessToken:
        self.issued.append((member_id, role))
        return AccessToken(f"access-{len(self.issued)}", 900)


class FakeThrottle:
    """The attempt throttle in memory: ``attempts`` counts reservations per subject."""

    def __init__(self, limit: int = 5, window: int = 60) -> None:
        self.limit = limit
        self.window = window
        self.attempts: dict[str, int] = {}

    async def reserve(self, subject: str) -> int | None:
        self.attempts[subject] = self.attempts.get(subject, 0) + 1
        return self.window if self.attempts[subject] > self.limit else None

    async def release(self, subject: str) -> None:
        self.attempts[subject] = max(0, self.attempts.get(subject, 0) - 1)

    async def reset(self, subject: str) -> None:
        self.attempts.pop(subject, None)
