"""Token deny-list (revocation of stateless access tokens): a withdrawn member's tokens are refused before they expire.

An access token is a self-contained JWT (ADR-4 in docs/architecture.md): nothing checks it against
member's database, so a token issued before a withdrawal stays valid for up to its lifetime. member
writes one Redis entry per withdrawn member and the gateway reads it for every request that carries
a verified token (docs/sagas.md: "once the saga completes, the member's access tokens are refused
everywhere (401)").

The entry ``token-deny:member:{member_id}`` holds the withdrawal time in whole epoch seconds,
rounded up: a token whose ``iat`` (whole seconds, rounded down by the issuer) is at or before it
was issued before the withdrawal and is refused. The entry needs to live only as long as such a
token can: the access token's lifetime, plus the verifiers' leeway on ``exp`` and some clock skew
(:data:`MARGIN_SECONDS`), counted from when the entry is written (never before the withdrawal).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

from redis.asyncio import Redis

KEY_PREFIX = "token-deny:member:"
#: Added to the access token's lifetime: covers ``JwksVerifier``'s leeway on ``exp`` (5 s,
#: ``chassis.auth``) and clock skew between member and the verifiers, with room to spare.
MARGIN_SECONDS = 60


def deny_key(member_id: uuid.UUID) -> str:
    """The Redis key of one member's entry."""
    return f"{KEY_PREFIX}{member_id}"


def entry_ttl(access_token_ttl_seconds: int) -> int:
    """Seconds an entry must live: the longest a token issued before it may still be accepted."""
    return access_token_ttl_seconds + MARGIN_SECONDS


def denied_before(withdrawn_at: dt.datetime) -> int:
    """The entry's value for a withdrawal at ``withdrawn_at`` (aware): epoch seconds, rounded up,
    so a token issued in the same second as the withdrawal is refused too."""
    return math.ceil(withdrawn_at.timestamp())


def is_denied(issued_at: float, denied_since: int | None) -> bool:
    """True when a token issued at ``issued_at`` (its ``iat``, epoch seconds) is refused."""
    return denied_since is not None and issued_at <= denied_since


class TokenDenyList:
    """The Redis entries (shared by every member worker and gateway replica).

    Redis errors (``redis.exceptions.RedisError``, ``OSError``, ``TimeoutError``) propagate: the
    writer treats them as a transient failure and waits the outage out; the reader decides what
    an unknown answer means.
    """

    def __init__(self, redis: Redis, *, ttl_seconds: int | None = None) -> None:
        """``ttl_seconds`` (see :func:`entry_ttl`) is needed by the writer only."""
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    async def deny_member(self, member_id: uuid.UUID, withdrawn_at: dt.datetime) -> None:
        """Refuse every token of ``member_id`` issued at or before ``withdrawn_at``, for
        ``ttl_seconds`` from now. Idempotent; a repeat with a later time widens the refusal."""
        if self.ttl_seconds is None:
            raise ValueError("a deny-list without ttl_seconds can only be read")
        await self.redis.set(
            deny_key(member_id), str(denied_before(withdrawn_at)), ex=self.ttl_seconds
        )

    async def denied_since(self, member_id: uuid.UUID) -> int | None:
        """The entry's time (epoch seconds), or None when the member has no entry."""
        raw = await self.redis.get(deny_key(member_id))
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            # Not written by deny_member: refuse every token issued before now rather than
            # ignore an entry someone meant to set.
            return math.ceil(dt.datetime.now(dt.UTC).timestamp())
