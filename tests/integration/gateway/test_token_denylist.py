"""The token deny-list at the edge against the real Redis: a withdrawn member's tokens get 401, fail open without Redis.

The kind: a withdrawn member keeps writing. An access token is a self-contained JWT, so one
issued before a withdrawal stayed valid for its whole lifetime (15 minutes) after it.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from redis.asyncio import Redis

from chassis.auth import JwksVerifier
from chassis.problems import Unauthorized
from chassis.token_denylist import TokenDenyList, deny_key, entry_ttl
from gateway.auth import DeniedMembers, EdgeAuth, TokenRevoked, VerifiedTokens
from gateway.metrics import TOKEN_DENYLIST_ERRORS
from gateway.proxy import admit
from gateway.ratelimit import RateLimiter
from gateway.routes import Access
from tests.support.processes import free_port
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.integration


def edge(issuer: TokenIssuer, redis: Redis, *, max_age: float = 1.0) -> EdgeAuth:
    verifier = JwksVerifier(issuer.fetch, issuer=issuer.issuer, audience=issuer.audience)
    return EdgeAuth(
        verifier,
        VerifiedTokens(max_age=60, max_entries=100),
        DeniedMembers(TokenDenyList(redis), max_age=max_age),
    )


async def test_a_token_issued_before_the_withdrawal_is_refused(
    redis: Redis, issuer: TokenIssuer
) -> None:
    """Verified and cached before the withdrawal, the token is refused right after it (the
    per-member memory of the deny-list is off here), and so is one issued in the same second;
    another member's token still works. The entry lives as long as a token can."""
    auth = edge(issuer, redis, max_age=0)
    member, other = uuid.uuid4(), uuid.uuid4()
    old = f"Bearer {issuer.token(member)}"
    assert (await auth.authenticate(old)).id == member  # verified and remembered

    writer = TokenDenyList(redis, ttl_seconds=entry_ttl(900))
    await writer.deny_member(member, dt.datetime.now(dt.UTC))

    with pytest.raises(TokenRevoked) as refused:
        await auth.authenticate(old)
    assert refused.value.status == 401
    with pytest.raises(TokenRevoked):
        await auth.authenticate(f"Bearer {issuer.token(member)}")  # same second
    assert (await auth.authenticate(f"Bearer {issuer.token(other)}")).id == other
    assert 900 < await redis.ttl(deny_key(member)) <= entry_ttl(900)


async def test_only_tokens_issued_at_or_before_the_withdrawal_are_refused(
    redis: Redis, issuer: TokenIssuer
) -> None:
    auth = edge(issuer, redis, max_age=0)
    member = uuid.uuid4()
    withdrawn_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    await TokenDenyList(redis, ttl_seconds=60).deny_member(member, withdrawn_at)
    with pytest.raises(TokenRevoked):
        await auth.authenticate(f"Bearer {issuer.token(member, iat=withdrawn_at)}")
    assert (await auth.authenticate(f"Bearer {issuer.token(member)}")).id == member


async def test_a_withdrawal_reaches_the_edge_within_the_memory_of_the_deny_list(
    redis: Redis, issuer: TokenIssuer
) -> None:
    """Each member's answer is remembered for ``max_age`` seconds, no longer."""
    now = [100.0]
    auth = edge(issuer, redis)
    assert auth.denied is not None
    auth.denied._clock = lambda: now[0]
    member = uuid.uuid4()
    token = f"Bearer {issuer.token(member)}"
    await auth.authenticate(token)
    await TokenDenyList(redis, ttl_seconds=60).deny_member(member, dt.datetime.now(dt.UTC))
    await auth.authenticate(token)  # still remembered as not denied
    now[0] += 1.0
    with pytest.raises(TokenRevoked):
        await auth.authenticate(token)


async def test_revoked_tokens_are_refused_on_public_routes_that_read_the_token(
    redis: Redis, issuer: TokenIssuer
) -> None:
    """A revoked token gets 401 on a TOKEN route and on a PUBLIC one whose upstream reads the
    token; where the upstream ignores the header (login, refresh ...) it passes as anonymous."""
    auth = edge(issuer, redis, max_age=0)
    limiter = RateLimiter(redis, per_minute=0, key_prefix="test:")
    member = uuid.uuid4()
    header = f"Bearer {issuer.token(member)}"
    await TokenDenyList(redis, ttl_seconds=60).deny_member(member, dt.datetime.now(dt.UTC))
    for access in (Access.TOKEN, Access.PUBLIC):
        with pytest.raises(TokenRevoked):
            await admit(auth, limiter, access, header, "192.0.2.1")
    assert await admit(auth, limiter, Access.PUBLIC, header, "192.0.2.1", reads_token=False) is None
    # an invalid token on a public route stays anonymous, as before
    assert await admit(auth, limiter, Access.PUBLIC, "Bearer x.y.z", "192.0.2.1") is None
    with pytest.raises(Unauthorized):
        await admit(auth, limiter, Access.TOKEN, "Bearer x.y.z", "192.0.2.1")


async def test_without_redis_tokens_are_let_through_and_counted(issuer: TokenIssuer) -> None:
    """Fail open: the deny-list protects against a withdrawn member, it must not become the
    reason nobody can be authenticated. board and qna still refuse the member's writes."""
    unreachable: Redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        auth = edge(issuer, unreachable)
        before = TOKEN_DENYLIST_ERRORS._value.get()
        member = uuid.uuid4()
        assert (await auth.authenticate(f"Bearer {issuer.token(member)}")).id == member
        assert TOKEN_DENYLIST_ERRORS._value.get() == before + 1
        await auth.authenticate(f"Bearer {issuer.token(member)}")  # remembered: no second wait
        assert TOKEN_DENYLIST_ERRORS._value.get() == before + 1
    finally:
        await unreachable.aclose()
