"""The edge's admission when the JWKS cannot be fetched: a protected route is a 503 (an outage,
not a bad token), a public route goes on as anonymous (sign-up, login and refresh must not
depend on the key fetch)."""

from __future__ import annotations

from typing import Any

import pytest

from chassis.auth import JwksVerifier
from chassis.problems import ServiceUnavailable
from gateway.auth import EdgeAuth, VerifiedTokens
from gateway.proxy import admit
from gateway.ratelimit import RateLimiter
from gateway.routes import PUBLIC, TOKEN
from tests.support.tokens import TokenIssuer


async def unreachable() -> dict[str, Any]:
    raise ConnectionRefusedError("member is down")


def edge() -> EdgeAuth:
    verifier = JwksVerifier(unreachable, issuer="msa-member", audience="msa")
    return EdgeAuth(verifier, VerifiedTokens(max_age=60, max_entries=10))


NO_LIMIT = RateLimiter(None, per_minute=0, key_prefix="unused:")  # type: ignore[arg-type]


async def test_a_protected_route_is_503_when_the_token_cannot_be_checked() -> None:
    with pytest.raises(ServiceUnavailable) as refused:
        await admit(edge(), NO_LIMIT, TOKEN, f"Bearer {TokenIssuer().token()}", "10.0.0.1")
    assert "Retry-After" in refused.value.headers


async def test_a_public_route_goes_on_as_anonymous_when_the_token_cannot_be_checked() -> None:
    principal = await admit(edge(), NO_LIMIT, PUBLIC, f"Bearer {TokenIssuer().token()}", "10.0.0.1")
    assert principal is None
