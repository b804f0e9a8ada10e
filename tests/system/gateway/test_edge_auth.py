"""JWT at the edge, in a real gateway process whose JWKS comes from the member echo."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.infra import wait_for
from tests.support.processes import ServiceProcess
from tests.support.tokens import TokenIssuer, unsigned_token

pytestmark = pytest.mark.system

PROTECTED = "/api/members/me"
PUBLIC = "/api/boards"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_passes(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    response = await client.get(PROTECTED, headers=issuer.headers())
    assert response.status_code == 200
    assert response.json()["upstream"] == "member"


def tampered(issuer: TokenIssuer) -> str:
    """A valid token whose claims were edited (role: ADMIN) after signing."""
    header, payload, signature = issuer.token().split(".")
    claims = json.loads(_b64decode(payload))
    claims["role"] = "ADMIN"
    return ".".join([header, _b64encode(json.dumps(claims).encode()), signature])


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BAD_TOKENS: dict[str, Callable[[TokenIssuer], str | None]] = {
    "missing": lambda i: None,
    "tampered": tampered,
    "expired": lambda i: i.token(ttl=dt.timedelta(minutes=-2)),
    "alg none": lambda i: unsigned_token(str(uuid.uuid4())),
    "wrong audience": lambda i: i.token(aud="another-system"),
    "unknown key": lambda i: TokenIssuer().token(),
    "garbage": lambda i: "a.b.c",
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_tokens_get_401_on_protected_routes(
    client: httpx.AsyncClient, issuer: TokenIssuer, kind: str
) -> None:
    token = BAD_TOKENS[kind](issuer)
    response = await client.get(PROTECTED, headers=bearer(token) if token else {})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token abc", "Bearer t\xe9st"]
)
async def test_a_bad_authorization_scheme_gets_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get(PROTECTED, headers=[(b"authorization", header.encode("latin-1"))])
    assert response.status_code == 401


async def test_public_routes_leave_a_bad_token_to_the_service(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    expired = issuer.token(ttl=dt.timedelta(minutes=-2))
    response = await client.get(PUBLIC, headers=bearer(expired))
    assert response.status_code == 200
    assert response.json()["headers"]["authorization"] == f"Bearer {expired}"
    refresh = await client.post(
        "/api/auth/refresh", headers=bearer(expired), json={"refresh_token": "r"}
    )
    assert refresh.status_code == 200


async def test_a_rotated_key_is_accepted_without_a_restart(
    client: httpx.AsyncClient, issuer: TokenIssuer, jwks_file: Path, gateway: ServiceProcess
) -> None:
    # The gateway has the current key set cached ...
    assert (await client.get(PROTECTED, headers=issuer.headers())).status_code == 200
    pid = gateway.proc.pid if gateway.proc else None
    # ... then member starts signing with a new key, publishing both (rotation overlap).
    rotated = TokenIssuer()
    keys = json.dumps({"keys": [issuer.jwk(), rotated.jwk()]})
    await asyncio.to_thread(jwks_file.write_text, keys)
    token = rotated.token()

    async def accepted() -> bool:
        response = await client.get(PROTECTED, headers=bearer(token))
        return response.status_code == 200

    # The unknown kid makes the gateway re-fetch the JWKS (at most every 0.5 s here).
    await wait_for(accepted, timeout=10, message="the new key to be accepted")
    assert gateway.proc is not None
    assert gateway.proc.pid == pid
    assert gateway.proc.poll() is None
    # Tokens signed with the previous key still pass during the overlap.
    assert (await client.get(PROTECTED, headers=issuer.headers())).status_code == 200
