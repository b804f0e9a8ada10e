"""Access token at the edge: the gateway verifies the bearer JWT against the member service's JWKS and the token deny-list.

The services verify the same token again (defence in depth), so the gateway forwards the
original ``Authorization`` header untouched. The verification itself is the chassis'
``JwksVerifier``: asymmetric algorithms only (``alg: none`` and HS/RS confusion refused),
``iss``/``aud``/``exp`` checked, keys cached and re-fetched on an unknown ``kid``, and a JWKS
that cannot be fetched answered with 503, never 401.

A verified token can still be revoked: once a member's withdrawal has completed, member puts
the member on the token deny-list (``chassis.token_denylist``), and a token issued at or before
the withdrawal gets 401 here (docs/sagas.md). The deny-list is read from Redis for every request
with a verified token, remembered for at most ``DENY_LIST_CACHE_SECONDS`` per member. When
Redis cannot answer, the token is let through (fail open, logged and counted in
``gateway_token_denylist_errors_total``): board and qna still refuse a withdrawn member's
writes from their own author copy, and member refuses every session operation.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import jwt
from redis.exceptions import RedisError

from chassis.auth import JwksVerifier, Principal
from chassis.logging import get_logger
from chassis.metrics import DEGRADED_DEPENDENCY_FAILURES
from chassis.problems import Unauthorized
from chassis.token_denylist import TokenDenyList, is_denied
from gateway.config import Settings
from gateway.metrics import TOKEN_DENYLIST_ERRORS

log = get_logger(__name__)


class TokenRevoked(Unauthorized):
    """401: the token verifies, but its member withdrew after it was issued (the deny-list)."""


def build_denied_members(settings: Settings, deny_list: TokenDenyList) -> DeniedMembers:
    return DeniedMembers(deny_list, max_age=settings.DENY_LIST_CACHE_SECONDS)


def build_verifier(settings: Settings) -> JwksVerifier:
    return JwksVerifier.from_settings(settings, url=settings.jwks_url)


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 for any other shape."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token


class VerifiedTokens:
    """A bounded memory of tokens already verified, so a client's next request with the same
    token costs a dictionary lookup instead of a signature check (an Ed25519 verification and
    PyJWT's parsing cost a few hundred microseconds, more than the rest of the edge together).

    Only the exact token string is remembered, so a tampered token is never a hit. An entry
    lives until the token expires, and at most ``max_age`` seconds, which bounds how long a
    key withdrawn from the JWKS still counts.
    """

    def __init__(
        self,
        *,
        max_age: float,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_age = max_age
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[Principal, float, float]] = {}

    def get(self, token: str) -> Principal | None:
        entry = self.get_issued(token)
        return entry[0] if entry else None

    def get_issued(self, token: str) -> tuple[Principal, float] | None:
        """The remembered caller and the token's ``iat`` (epoch seconds), or None."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, issued_at, valid_until = entry
        if self._clock() >= valid_until:
            del self._entries[token]
            return None
        return principal, issued_at

    def put(
        self, token: str, principal: Principal, expires_at: float, issued_at: float = 0.0
    ) -> None:
        if self.max_age <= 0 or self.max_entries <= 0:
            return
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        self._entries[token] = (
            principal,
            issued_at,
            min(expires_at, self._clock() + self.max_age),
        )


def _times(token: str) -> tuple[float, float]:
    """The ``iat`` and ``exp`` claims of a token whose signature has just been verified."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["iat"]), float(claims["exp"])


class DeniedMembers:
    """The gateway's view of the token deny-list: per member, the time before which tokens are
    refused, read from Redis and remembered for at most ``max_age`` seconds (a withdrawal
    reaches every replica within that). A Redis error or a slow answer (``timeout`` seconds)
    counts as "not denied" for ``max_age`` seconds: logged, and counted in
    ``gateway_token_denylist_errors_total``."""

    def __init__(
        self,
        deny_list: TokenDenyList,
        *,
        max_age: float = 1.0,
        max_entries: int = 10_000,
        timeout: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deny_list = deny_list
        self.max_age = max_age
        self.max_entries = max_entries
        self.timeout = timeout
        self._clock = clock
        self._entries: dict[uuid.UUID, tuple[int | None, float]] = {}

    async def denied_since(self, member_id: uuid.UUID) -> int | None:
        """Epoch seconds: the member's tokens issued at or before it are refused; None: none."""
        now = self._clock()
        entry = self._entries.get(member_id)
        if entry is not None and now < entry[1]:
            return entry[0]
        try:
            async with asyncio.timeout(self.timeout):
                since = await self.deny_list.denied_since(member_id)
        except (RedisError, OSError, TimeoutError) as exc:
            TOKEN_DENYLIST_ERRORS.inc()
            DEGRADED_DEPENDENCY_FAILURES.labels("gateway", "redis", "token_denylist").inc()
            log.warning("token_denylist.unavailable", error=f"{type(exc).__name__}: {exc}")
            since = None  # fail open: see the module docstring
        if self.max_age > 0:
            self._entries.pop(member_id, None)
            while self._entries and len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest entry
            self._entries[member_id] = (since, now + self.max_age)
        return since


class EdgeAuth:
    """Who is calling, from the ``Authorization`` header.

    What happens with the answer is the route's business (``proxy.admit``): a protected route
    refuses a caller without a valid token (401); a public route treats them as anonymous
    and lets the upstream, which verifies again, decide. A stale token sent along with a
    refresh request must not lock the user out at the edge.
    """

    def __init__(
        self,
        verifier: JwksVerifier,
        cache: VerifiedTokens,
        denied: DeniedMembers | None = None,
    ) -> None:
        # Replaceable, like ``app.state.verifier`` in the services (tests install a stub issuer).
        self.verifier = verifier
        self.cache = cache
        self.denied = denied

    async def authenticate(self, authorization: str) -> Principal:
        """The verified caller; 401 for a malformed header or an invalid token, and
        :class:`TokenRevoked` (401) for a token of a member who withdrew after it was issued."""
        token = bearer_token(authorization)
        known = self.cache.get_issued(token)
        if known is None:
            principal = await self.verifier.verify(token)
            issued_at, expires_at = _times(token)
            self.cache.put(token, principal, expires_at, issued_at)
        else:
            principal, issued_at = known
        # Checked on every request, cached or not: the verified-token cache outlives a withdrawal.
        if self.denied is not None and is_denied(
            issued_at, await self.denied.denied_since(principal.id)
        ):
            raise TokenRevoked("the token was revoked: its member has withdrawn")
        return principal
