"""Access token at the edge: the gateway verifies the bearer JWT against the member service's JWKS.

The services verify the same token again (defence in depth), so the gateway forwards the
original ``Authorization`` header untouched. The verification itself is the chassis'
``JwksVerifier``: asymmetric algorithms only (``alg: none`` and HS/RS confusion refused),
``iss``/``aud``/``exp`` checked, keys cached and re-fetched on an unknown ``kid``, and a JWKS
that cannot be fetched answered with 503, never 401.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt

from chassis.auth import JwksVerifier, Principal
from chassis.problems import Unauthorized
from gateway.config import Settings


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
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, valid_until = entry
        if self._clock() >= valid_until:
            del self._entries[token]
            return None
        return principal

    def put(self, token: str, principal: Principal, expires_at: float) -> None:
        if self.max_age <= 0 or self.max_entries <= 0:
            return
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        self._entries[token] = (principal, min(expires_at, self._clock() + self.max_age))


def _expiry(token: str) -> float:
    """The ``exp`` claim of a token whose signature has just been verified."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"])


class EdgeAuth:
    """Who is calling, from the ``Authorization`` header.

    What happens with the answer is the route's business (``proxy.admit``): a protected route
    refuses a caller without a valid token (401); a public route treats them as anonymous
    and lets the upstream, which verifies again, decide. A stale token sent along with a
    refresh request must not lock the user out at the edge.
    """

    def __init__(self, verifier: JwksVerifier, cache: VerifiedTokens) -> None:
        # Replaceable, like ``app.state.verifier`` in the services (tests install a stub issuer).
        self.verifier = verifier
        self.cache = cache

    async def authenticate(self, authorization: str) -> Principal:
        """The verified caller; 401 for a malformed header or an invalid token."""
        token = bearer_token(authorization)
        principal = self.cache.get(token)
        if principal is None:
            principal = await self.verifier.verify(token)
            self.cache.put(token, principal, _expiry(token))
        return principal
