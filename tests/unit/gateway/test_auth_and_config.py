"""Edge authentication (with the test issuer's JWKS) and the gateway's settings."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from chassis.auth import JwksVerifier, Principal
from chassis.problems import Unauthorized
from gateway.auth import EdgeAuth, VerifiedTokens, bearer_token
from gateway.config import Settings
from tests.support.tokens import TokenIssuer, unsigned_token


class CountingFetch:
    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer
        self.calls = 0

    async def __call__(self) -> dict[str, object]:
        self.calls += 1
        return self.issuer.jwks()


def edge(issuer: TokenIssuer, *, cache_seconds: float = 60.0) -> tuple[EdgeAuth, CountingFetch]:
    fetch = CountingFetch(issuer)
    verifier = JwksVerifier(fetch, issuer=issuer.issuer, audience=issuer.audience)
    return EdgeAuth(verifier, VerifiedTokens(max_age=cache_seconds, max_entries=100)), fetch


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwdw==", "Bearer", "Bearer ", "Token abc", "bearer a b", "Bearerabc"],
)
def test_only_bearer_headers_are_accepted(header: str) -> None:
    with pytest.raises(Unauthorized):
        bearer_token(header)


def test_the_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc.def") == "abc.def"


async def test_a_valid_token_names_the_caller(issuer: TokenIssuer) -> None:
    auth, _ = edge(issuer)
    me = uuid.uuid4()
    principal = await auth.authenticate(f"Bearer {issuer.token(me, 'ADMIN')}")
    assert principal.id == me
    assert principal.is_admin


@pytest.mark.parametrize(
    "make_token",
    [
        lambda i: unsigned_token(str(uuid.uuid4())),
        lambda i: i.token(ttl=dt.timedelta(minutes=-5)),
        lambda i: i.token(aud="someone-else"),
        lambda i: i.token(iss="someone-else"),
        lambda i: TokenIssuer().token(),  # a key the JWKS does not have
        lambda i: i.token()[:-4] + "AAAA",  # tampered signature
        lambda i: "not.a.token",
        lambda i: "ey" + "A" * 40,
        # HS/RS confusion: a token "signed" with the published public key as an HMAC secret.
        lambda i: jwt.encode(
            {"sub": str(uuid.uuid4()), "exp": time.time() + 60},
            i.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            algorithm="HS256",
            headers={"kid": i.kid},
        ),
    ],
)
async def test_bad_tokens_are_refused(issuer: TokenIssuer, make_token: object) -> None:
    auth, _ = edge(issuer)
    with pytest.raises(Unauthorized):
        await auth.authenticate(f"Bearer {make_token(issuer)}")  # type: ignore[operator]


class CountingVerifier(JwksVerifier):
    def __init__(self, issuer: TokenIssuer) -> None:
        super().__init__(issuer.fetch, issuer=issuer.issuer, audience=issuer.audience)
        self.verified: list[str] = []

    async def verify(self, token: str) -> Principal:
        self.verified.append(token)
        return await super().verify(token)


async def test_a_verified_token_is_remembered(issuer: TokenIssuer) -> None:
    verifier = CountingVerifier(issuer)
    auth = EdgeAuth(verifier, VerifiedTokens(max_age=60, max_entries=100))
    token = issuer.token()
    first = await auth.authenticate(f"Bearer {token}")
    second = await auth.authenticate(f"Bearer {token}")
    assert first == second
    assert verifier.verified == [token]
    other = issuer.token()
    await auth.authenticate(f"Bearer {other}")
    assert verifier.verified == [token, other]


def test_remembered_tokens_expire_with_the_token_or_the_max_age() -> None:
    now = [1000.0]
    cache = VerifiedTokens(max_age=60, max_entries=2, clock=lambda: now[0])
    who = Principal(uuid.uuid4(), "USER")
    cache.put("short", who, expires_at=1010)
    cache.put("long", who, expires_at=5000)
    now[0] = 1010
    assert cache.get("short") is None
    assert cache.get("long") == who
    now[0] = 1060
    assert cache.get("long") is None


def test_the_memory_is_bounded() -> None:
    cache = VerifiedTokens(max_age=60, max_entries=2, clock=lambda: 0.0)
    who = Principal(uuid.uuid4(), "USER")
    for token in ("a", "b", "c"):
        cache.put(token, who, expires_at=100)
    assert cache.get("a") is None
    assert cache.get("b") == who
    assert cache.get("c") == who


def test_a_zero_max_age_disables_the_memory() -> None:
    cache = VerifiedTokens(max_age=0, max_entries=10)
    cache.put("a", Principal(uuid.uuid4(), "USER"), expires_at=time.time() + 60)
    assert cache.get("a") is None


def test_the_jwks_defaults_to_the_member_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWKS_URL", raising=False)
    monkeypatch.setenv("MEMBER_URL", "http://member-api:8000/")
    assert Settings().jwks_url == "http://member-api:8000/.well-known/jwks.json"
    monkeypatch.setenv("JWKS_URL", "http://keys.example/jwks.json")
    assert Settings().jwks_url == "http://keys.example/jwks.json"


def test_cors_origins_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:3000, https://app.example ,")
    assert Settings().CORS_ORIGINS == ["http://localhost:3000", "https://app.example"]
    monkeypatch.setenv("CORS_ORIGINS", "")
    assert Settings().CORS_ORIGINS == []


def test_defaults_follow_the_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SERVICE_NAME", "HTTP_PORT", "MEMBER_URL", "BOARD_URL", "QNA_URL", "SAGA_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WEB_URL", "UPSTREAM_TIMEOUT_SECONDS", "WEB_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.SERVICE_NAME, settings.HTTP_PORT) == ("gateway", 8000)
    assert settings.upstream_urls() == {
        "member": "http://127.0.0.1:8001",
        "board": "http://127.0.0.1:8002",
        "qna": "http://127.0.0.1:8003",
        "saga": "http://127.0.0.1:8004",
        "web": "http://127.0.0.1:8005",
    }
    # the front end may wait on the slowest API call (10 s) plus its own margin
    assert settings.upstream_timeouts() == {
        "member": 5.0,
        "board": 5.0,
        "qna": 5.0,
        "saga": 5.0,
        "web": 15.0,
    }
