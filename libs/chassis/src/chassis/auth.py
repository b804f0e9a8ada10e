"""Access token verification: JWTs checked against the issuer's JWKS, with key caching and rotation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chassis.problems import Forbidden, Unauthorized

#: Only asymmetric algorithms; "none" and every HS* are refused before any key is used.
ALLOWED_ALGORITHMS = ("EdDSA", "RS256")
_KTY_ALGS = {"OKP": "EdDSA", "RSA": "RS256"}

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    id: uuid.UUID
    role: str
    token: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "ADMIN"


def http_jwks_fetcher(url: str, timeout: float = 3.0) -> JwksFetcher:
    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    return fetch


class JwksVerifier:
    """Verify bearer tokens. Keys are cached; an unknown ``kid`` triggers a (rate-limited) re-fetch,
    which is how a key rotation at the issuer reaches every verifier without a restart."""

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        cache_seconds: float = 300.0,
        min_refetch_seconds: float = 5.0,
        leeway: float = 5.0,
    ) -> None:
        self._fetch = fetch
        self.issuer = issuer
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.leeway = leeway
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, issuer: str, audience: str) -> JwksVerifier:
        return cls(http_jwks_fetcher(url), issuer=issuer, audience=audience)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if not force and self._keys and age < self.cache_seconds:
                return
            if force and age < self.min_refetch_seconds:
                return
            jwks = await self._fetch()
            keys: dict[str, jwt.PyJWK] = {}
            for raw in jwks.get("keys", []):
                kid = raw.get("kid")
                if not kid or raw.get("kty") not in _KTY_ALGS:
                    continue
                try:
                    keys[kid] = jwt.PyJWK(raw)
                except jwt.PyJWTError:
                    continue
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str) -> jwt.PyJWK | None:
        try:
            await self._refresh(force=False)
            if kid not in self._keys:
                await self._refresh(force=True)
        except (httpx.HTTPError, ValueError) as exc:
            if not self._keys:
                raise Unauthorized("token keys are unavailable") from exc
        return self._keys.get(kid)

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        alg = header.get("alg")
        kid = header.get("kid")
        if alg not in ALLOWED_ALGORITHMS or not isinstance(kid, str):
            raise Unauthorized("token algorithm or key id not accepted")
        key = await self._key_for(kid)
        if key is None:
            raise Unauthorized("unknown signing key")
        if _KTY_ALGS.get(str(key.key_type)) != alg:
            raise Unauthorized("token algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            return Principal(uuid.UUID(str(claims["sub"])), str(claims.get("role", "USER")), token)
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc


_bearer = HTTPBearer(auto_error=False)


async def optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller if a bearer token is present (and valid); None when there is no token."""
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        return None
    verifier: JwksVerifier = request.app.state.verifier
    return await verifier.verify(credentials.credentials)


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    """The verified caller; 401 without a valid token."""
    if principal is None:
        raise Unauthorized()
    return principal


async def admin_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """The verified caller, who must be an admin; 403 otherwise."""
    if not principal.is_admin:
        raise Forbidden("admin role required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
