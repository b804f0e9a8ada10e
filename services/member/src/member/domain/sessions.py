"""Entity: a refresh token, stored only as its hash; tokens of one login form a family that rotates.

Only member has it: logins and refresh tokens are member's alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

#: Refresh tokens are opaque: 32 random bytes, URL-safe base64 (43 characters).
REFRESH_TOKEN_BYTES = 32
REFRESH_TOKEN_MAX_LENGTH = 200


def hash_token(raw: str) -> str:
    """SHA-256 is enough for a 256-bit random value: it cannot be guessed, only stolen,
    and the database keeps nothing a thief could present."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_raw_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


@dataclass(eq=False)
class RefreshToken:
    """One link of a family. Using it marks it used and issues its child; presenting a used token
    again means it was stolen (or replayed), so the whole family is revoked."""

    id: uuid.UUID
    member_id: uuid.UUID
    family_id: uuid.UUID
    parent_id: uuid.UUID | None
    token_hash: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    @classmethod
    def issue(
        cls,
        member_id: uuid.UUID,
        *,
        ttl: dt.timedelta,
        now: dt.datetime,
        family_id: uuid.UUID | None = None,
        parent_id: uuid.UUID | None = None,
    ) -> tuple[RefreshToken, str]:
        """A new token and its raw value (handed to the client once, never stored)."""
        raw = new_raw_token()
        token = cls(
            id=uuid.uuid4(),
            member_id=member_id,
            family_id=family_id or uuid.uuid4(),
            parent_id=parent_id,
            token_hash=hash_token(raw),
            issued_at=now,
            expires_at=now + ttl,
        )
        return token, raw

    def is_expired(self, now: dt.datetime) -> bool:
        return now >= self.expires_at

    @property
    def was_used(self) -> bool:
        return self.used_at is not None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def rotate(self, *, ttl: dt.timedelta, now: dt.datetime) -> tuple[RefreshToken, str]:
        """Mark this token used and issue its successor in the same family."""
        self.used_at = now
        return RefreshToken.issue(
            self.member_id, ttl=ttl, now=now, family_id=self.family_id, parent_id=self.id
        )
