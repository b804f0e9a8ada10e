"""JWKS outage handling (transient failure of the issuer, not a bad token): 503 instead of 401, the last
good keys kept, refetches backed off and never queued behind, no fetch storm from made-up key ids."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from chassis.auth import JwksVerifier
from chassis.messaging.failures import Backoff
from chassis.metrics import JWKS_REFRESH_FAILURES
from chassis.problems import ServiceUnavailable, Unauthorized
from tests.support.tokens import TokenIssuer


class ScriptedFetch:
    """A fake of the JWKS fetch port: serves the issuers' keys, or fails the way it is told."""

    def __init__(self, *issuers: TokenIssuer) -> None:
        self.issuers = list(issuers)
        self.failure: BaseException | None = None
        self.document: object = None  # when set, returned instead of the issuers' keys
        self.gate: asyncio.Event | None = None  # when set, each fetch waits for it
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        if self.document is not None:
            return self.document  # type: ignore[return-value]
        return {"keys": [i.jwk() for i in self.issuers]}


class Clock:
    """A hand-held monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


REQUEST = httpx.Request("GET", "http://member/.well-known/jwks.json")

#: Every way the fetch can fail: transport, timeout, an error status, not JSON, not a key set.
FAILURES: dict[str, BaseException | object] = {
    "connection refused": httpx.ConnectError("connection refused", request=REQUEST),
    "timeout": httpx.ReadTimeout("timed out", request=REQUEST),
    "503": httpx.HTTPStatusError(
        "503", request=REQUEST, response=httpx.Response(503, request=REQUEST)
    ),
    "404": httpx.HTTPStatusError(
        "404", request=REQUEST, response=httpx.Response(404, request=REQUEST)
    ),
    "not json": json.JSONDecodeError("Expecting value", "<html>", 0),
    "a list": ["not", "a", "key", "set"],
    "keys not a list": {"keys": "nope"},
    "no keys member": {"error": "maintenance"},
}


def fail(fetch: ScriptedFetch, how: BaseException | object) -> None:
    if isinstance(how, BaseException):
        fetch.failure, fetch.document = how, None
    else:
        fetch.failure, fetch.document = None, how


def keys_age(service: str) -> float | None:
    return REGISTRY.get_sample_value("jwks_keys_age_seconds", {"service": service})


def verifier(fetch: ScriptedFetch, **kw: Any) -> JwksVerifier:
    return JwksVerifier(fetch, issuer="msa-member", audience="msa", **kw)


@pytest.mark.parametrize("how", FAILURES.values(), ids=FAILURES.keys())
async def test_no_keys_and_an_unreachable_jwks_is_a_503_not_a_401(how: object) -> None:
    """Kind: a dependency outage reported as the client's fault (401 makes clients drop tokens)."""
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    fail(fetch, how)
    with pytest.raises(ServiceUnavailable) as refused:
        await verifier(fetch).verify(issuer.token())
    assert refused.value.status == 503
    assert int(refused.value.headers["Retry-After"]) >= 1


async def test_a_fetch_that_hangs_is_bounded_by_the_fetch_timeout() -> None:
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    fetch.gate = asyncio.Event()  # never set: the issuer does not answer
    with pytest.raises(ServiceUnavailable):
        await asyncio.wait_for(verifier(fetch, fetch_timeout=0.05).verify(issuer.token()), 2)


async def test_the_last_good_keys_are_used_past_their_cache_time_while_refetches_fail() -> None:
    """Kind: an outage of the issuer turning every valid token away."""
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    clock = Clock()
    v = verifier(fetch, cache_seconds=60, clock=clock)
    await v.verify(issuer.token())
    fail(fetch, FAILURES["connection refused"])
    clock.now += 3600  # far past the cache time
    for _ in range(5):
        assert (await v.verify(issuer.token())).id
        await asyncio.sleep(0)  # let the background refetch run
    assert v.failing
    assert fetch.calls == 2  # the first fetch, then one refetch: the others wait out the backoff


async def test_refetching_backs_off_exponentially_up_to_the_cap() -> None:
    """Kind: a fetch on every request (under a lock) while the issuer is down."""
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    fail(fetch, FAILURES["connection refused"])
    clock = Clock()
    v = verifier(fetch, clock=clock, backoff=Backoff(initial=1.0, cap=30.0, jitter=0.0))
    waits: list[int] = []
    for _ in range(8):
        calls = fetch.calls
        # many requests at the same moment: one fetch at most
        for _ in range(20):
            with pytest.raises(ServiceUnavailable) as refused:
                await v.verify(issuer.token())
        assert fetch.calls == calls + 1
        retry_after = int(refused.value.headers["Retry-After"])
        waits.append(retry_after)
        clock.now += retry_after  # exactly when the next fetch is allowed
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]


async def test_many_requests_while_the_issuer_is_down_make_one_fetch_per_backoff() -> None:
    """Kind: a fetch storm against a struggling issuer (real clock, default settings)."""
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    fail(fetch, FAILURES["connection refused"])
    v = verifier(fetch)
    for _ in range(100):
        with pytest.raises(ServiceUnavailable):
            await v.verify(issuer.token())
    assert fetch.calls == 1


async def test_a_request_with_stale_keys_does_not_wait_for_the_fetch_in_flight() -> None:
    """Kind: requests queued behind a slow refetch under a lock."""
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    v = verifier(fetch, cache_seconds=0.01)
    await v.verify(issuer.token())
    await asyncio.sleep(0.02)  # the keys are stale now
    fetch.gate = asyncio.Event()  # the refetch hangs until the test lets it go
    started = asyncio.get_running_loop().time()
    for _ in range(10):
        assert (await asyncio.wait_for(v.verify(issuer.token()), 0.5)).id
    assert asyncio.get_running_loop().time() - started < 0.5
    assert fetch.calls == 2  # one refetch in flight, shared
    fetch.gate.set()
    await v.aclose()


async def test_requests_without_a_key_share_the_fetch_in_flight() -> None:
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    fetch.gate = asyncio.Event()
    v = verifier(fetch)
    pending = [asyncio.create_task(v.verify(issuer.token())) for _ in range(20)]
    await asyncio.sleep(0.01)
    fetch.gate.set()
    principals = await asyncio.gather(*pending)
    assert len(principals) == 20
    assert fetch.calls == 1


async def test_made_up_key_ids_cause_no_fetch_storm_while_the_issuer_is_up() -> None:
    """A healthy issuer was just asked: an unknown kid is a 401, one refetch per window."""
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    v = verifier(fetch, min_refetch_seconds=5)
    await v.verify(issuer.token())
    for _ in range(50):
        with pytest.raises(Unauthorized):
            await v.verify(TokenIssuer().token())  # a key the issuer never published
    assert fetch.calls == 1  # the set was fetched less than min_refetch_seconds ago


async def test_an_unknown_kid_while_the_issuer_is_down_is_a_503_without_a_fetch() -> None:
    """It may be a key rotated in during the outage: only the issuer could say, so 503."""
    old, rotated = TokenIssuer(), TokenIssuer()
    fetch = ScriptedFetch(old)
    clock = Clock()
    v = verifier(fetch, cache_seconds=60, min_refetch_seconds=0, clock=clock)
    await v.verify(old.token())
    fail(fetch, FAILURES["timeout"])
    clock.now += 120
    await v.verify(old.token())  # stale: starts the background refetch, which fails
    await asyncio.sleep(0)
    calls = fetch.calls
    for _ in range(20):
        with pytest.raises(ServiceUnavailable):
            await v.verify(rotated.token())
    assert fetch.calls == calls  # backing off: nobody fetches
    fetch.issuers.append(rotated)
    fetch.failure = None
    clock.now += 60  # past any backoff
    assert (await v.verify(rotated.token())).id
    assert not v.failing


async def test_the_verifier_state_shows_in_readiness_and_metrics() -> None:
    issuer = TokenIssuer()
    fetch = ScriptedFetch(issuer)
    clock = Clock()
    v = verifier(fetch, clock=clock, cache_seconds=60, service="unit-jwks")
    failures = JWKS_REFRESH_FAILURES.labels("unit-jwks")._value.get()
    await v.check()  # nothing known yet: nothing to report
    await v.verify(issuer.token())
    clock.now += 90
    assert keys_age("unit-jwks") == 90
    fail(fetch, FAILURES["503"])
    await v.verify(issuer.token())
    await asyncio.sleep(0)
    assert JWKS_REFRESH_FAILURES.labels("unit-jwks")._value.get() == failures + 1
    with pytest.raises(Exception, match=r"JWKS unavailable since .* using keys fetched at"):
        await v.check()
    fetch.failure = None
    clock.now += 60
    await v.verify(issuer.token())
    await asyncio.sleep(0)
    await v.check()  # recovered
    assert keys_age("unit-jwks") == 0
