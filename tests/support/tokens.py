"""Test tokens: an Ed25519 key pair, a JWKS for it and signed access tokens (a fake issuer)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "msa-member"
AUDIENCE = "msa"


@dataclass
class TokenIssuer:
    """Signs tokens the way the member service does, for tests of the other services."""

    kid: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    issuer: str = ISSUER
    audience: str = AUDIENCE

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "alg": "EdDSA", "use": "sig"})
        return jwk

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    async def fetch(self) -> dict[str, Any]:
        return self.jwks()

    def token(
        self,
        sub: uuid.UUID | str | None = None,
        role: str = "USER",
        *,
        ttl: dt.timedelta = dt.timedelta(minutes=15),
        **overrides: Any,
    ) -> str:
        now = dt.datetime.now(dt.UTC)
        claims: dict[str, Any] = {
            "sub": str(sub or uuid.uuid4()),
            "role": role,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl,
        }
        claims.update(overrides)
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})

    def headers(self, sub: uuid.UUID | str | None = None, role: str = "USER") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, role)}"}


def unsigned_token(sub: str, role: str = "ADMIN") -> str:
    """An ``alg: none`` token: every verifier must refuse it."""
    now = dt.datetime.now(dt.UTC)
    return jwt.encode(
        {
            "sub": sub,
            "role": role,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + dt.timedelta(minutes=5),
        },
        key="",
        algorithm="none",
        headers={"kid": "whatever"},
    )
