"""Access-token verification: good tokens pass; forged, expired, alg:none and HS/RS-confused ones do not."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from chassis.auth import JwksVerifier
from chassis.problems import Unauthorized
from tests.support.tokens import TokenIssuer, unsigned_token


def verifier_for(*issuers: TokenIssuer, calls: list[int] | None = None) -> JwksVerifier:
    async def fetch() -> dict[str, Any]:
        if calls is not None:
            calls.append(1)
        return {"keys": [i.jwk() for i in issuers]}

    return JwksVerifier(fetch, issuer="msa-member", audience="msa", min_refetch_seconds=0)


async def test_a_valid_token_yields_the_principal() -> None:
    issuer = TokenIssuer()
    member = uuid.uuid4()
    principal = await verifier_for(issuer).verify(issuer.token(member, "ADMIN"))
    assert principal.id == member
    assert principal.is_admin


@pytest.mark.parametrize(
    "make",
    [
        lambda i: i.token(ttl=dt.timedelta(minutes=-5)),  # expired
        lambda i: i.token(aud="someone-else"),
        lambda i: i.token(iss="evil"),
        lambda i: i.token()[:-4] + "AAAA",  # tampered signature
        lambda i: unsigned_token(str(uuid.uuid4())),  # alg: none
        lambda i: "not-a-jwt",
    ],
    ids=["expired", "audience", "issuer", "tampered", "alg-none", "garbage"],
)
async def test_bad_tokens_are_refused(make: Any) -> None:
    issuer = TokenIssuer()
    with pytest.raises(Unauthorized):
        await verifier_for(issuer).verify(make(issuer))


async def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """The classic HS/RS confusion: a public key used as an HMAC secret."""
    issuer = TokenIssuer()
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    claims = {
        "sub": str(uuid.uuid4()),
        "role": "ADMIN",
        "iss": "msa-member",
        "aud": "msa",
        "iat": now,
        "exp": now + 300,
    }

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    secret = json.dumps(issuer.jwk()).encode()  # what an attacker knows: the published key
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(signature)}"
    with pytest.raises(Unauthorized):
        await verifier_for(issuer).verify(forged)


async def test_rs256_token_against_an_ed25519_kid_is_refused() -> None:
    issuer = TokenIssuer()
    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    token = jwt.encode(
        {
            "sub": str(uuid.uuid4()),
            "iss": "msa-member",
            "aud": "msa",
            "iat": now,
            "exp": now + dt.timedelta(minutes=5),
        },
        rsa,
        algorithm="RS256",
        headers={"kid": issuer.kid},
    )
    with pytest.raises(Unauthorized):
        await verifier_for(issuer).verify(token)


async def test_an_unknown_kid_triggers_one_refetch_so_a_rotated_key_is_accepted() -> None:
    old, new = TokenIssuer(), TokenIssuer()
    published = [old]
    calls: list[int] = []

    async def fetch() -> dict[str, Any]:
        calls.append(1)
        return {"keys": [i.jwk() for i in published]}

    verifier = JwksVerifier(fetch, issuer="msa-member", audience="msa", min_refetch_seconds=0)
    await verifier.verify(old.token())
    await verifier.verify(old.token())
    assert len(calls) == 1  # cached
    published.append(new)  # the issuer rotates
    await verifier.verify(new.token())
    assert len(calls) == 2
