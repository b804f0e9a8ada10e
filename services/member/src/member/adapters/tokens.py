"""Access tokens: EdDSA (Ed25519) JWTs with a ``kid``, and the JWKS that publishes the public keys.

The JWKS holds the current key plus the previous public keys, so a key rotation does not
invalidate tokens that are still live: verifiers find the old ``kid`` until those expire. Only
member has it: member issues the tokens, every other process only verifies them
(``chassis.auth``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from member.service_layer.ports import AccessToken

#: JWK members that only a private key has; never published even if configured by mistake.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_THUMBPRINT_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
}


class KeyConfigurationError(RuntimeError):
    """The signing key settings are missing or unusable: the api process must not start."""


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (base64url SHA-256 of the required members, sorted)."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(m not in jwk for m in members):
        raise KeyConfigurationError(f"cannot compute a thumbprint for key type {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _public_jwk_from_pem(pem: str) -> dict[str, Any]:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise KeyConfigurationError(
            f"a previous public key is not a PEM public key: {exc}"
        ) from exc
    if isinstance(key, Ed25519PublicKey):
        jwk: dict[str, Any] = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key))
        jwk["alg"] = "EdDSA"
    elif isinstance(key, RSAPublicKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
        jwk["alg"] = "RS256"
    else:
        raise KeyConfigurationError("previous public keys must be Ed25519 or RSA")
    return jwk


def previous_jwks(entries: Sequence[dict[str, Any] | str]) -> list[dict[str, Any]]:
    """JWKs for the keys still published after a rotation (JWK objects or PEM public keys)."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        jwk = _public_jwk_from_pem(entry) if isinstance(entry, str) else dict(entry)
        jwk = {k: v for k, v in jwk.items() if k not in _PRIVATE_JWK_MEMBERS}
        jwk.setdefault("kid", thumbprint(jwk))
        jwk.setdefault("use", "sig")
        out.append(jwk)
    return out


def load_private_key(pem: str | None, path: Path | None) -> Ed25519PrivateKey:
    if pem is None and path is not None:
        try:
            pem = path.read_text()
        except OSError as exc:
            raise KeyConfigurationError(f"cannot read JWT_PRIVATE_KEY_FILE {path}: {exc}") from exc
    if not pem or not pem.strip():
        raise KeyConfigurationError(
            "no signing key: set JWT_PRIVATE_KEY (PEM) or JWT_PRIVATE_KEY_FILE (an Ed25519 key, "
            "e.g. `openssl genpkey -algorithm ed25519`)"
        )
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyConfigurationError(f"the JWT private key is not a readable PEM: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError("the JWT private key must be an Ed25519 key")
    return key


class JwtIssuer:
    """Signs access tokens and serves the JWKS (also to this process's own verifier)."""

    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        key_id: str | None = None,
        previous: Sequence[dict[str, Any]] = (),
    ) -> None:
        self._private_key = private_key
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        public: dict[str, Any] = json.loads(
            jwt.algorithms.OKPAlgorithm.to_jwk(private_key.public_key())
        )
        self.kid = key_id or thumbprint(public)
        self._current = {**public, "kid": self.kid, "alg": "EdDSA", "use": "sig"}
        self._previous = [k for k in previous if k.get("kid") != self.kid]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._current, *self._previous]}

    async def fetch_jwks(self) -> dict[str, Any]:
        """A JWKS fetcher for ``JwksVerifier`` that needs no HTTP call to this same process."""
        return self.jwks()

    def issue(self, member_id: uuid.UUID, role: str) -> AccessToken:
        now = dt.datetime.now(dt.UTC)
        claims = {
            "sub": str(member_id),
            "role": str(role),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + dt.timedelta(seconds=self.ttl_seconds),
        }
        token = jwt.encode(claims, self._private_key, algorithm="EdDSA", headers={"kid": self.kid})
        return AccessToken(token, self.ttl_seconds)
