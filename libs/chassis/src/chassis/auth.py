"""Access token verification: JWTs checked against the issuer's JWKS, with key caching, rotation and
outage handling (last good keys served, refetches backed off, 503 rather than 401)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chassis.health import NotReady
from chassis.lifecycle import Phase
from chassis.logging import get_logger
from chassis.messaging.failures import Backoff
from chassis.metrics import JWKS_KEYS_AGE, JWKS_REFRESH_FAILURES
from chassis.problems import Forbidden, ServiceUnavailable, Unauthorized
from chassis.settings import BaseServiceSettings

log = get_logger(__name__)

#: Only asymmetric algorithms; "none" and every HS* are refused before any key is used.
ALLOWED_ALGORITHMS = ("EdDSA", "RS256")
_KTY_ALGS = {"OKP": "EdDSA", "RSA": "RS256"}

#: Returns the issuer's JWKS document (``{"keys": [<JWK>, ...]}``); raises when it cannot.
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


class JwksError(ValueError):
    """The JWKS document is not a JSON object with a ``keys`` list."""


def http_jwks_fetcher(url: str, timeout: float = 3.0) -> JwksFetcher:
    """A fetcher that GETs ``url``; a connection error, a timeout (``timeout`` seconds), a non-2xx
    answer or a body that is not JSON raises (``httpx.HTTPError`` or ``ValueError``)."""

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    return fetch


def parse_jwks(document: object) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document, by ``kid``.

    Keys without a ``kid``, of another key type than OKP (EdDSA) or RSA, or that PyJWT cannot
    load are skipped: one odd key must not hide the others. Raises ``JwksError`` when the document
    itself has the wrong shape (RFC 7517 §5: an object whose ``keys`` member is an array)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("the JWKS is not an object with a 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for raw in document["keys"]:
        if not isinstance(raw, dict):
            continue
        kid = raw.get("kid")
        if not isinstance(kid, str) or not kid or raw.get("kty") not in _KTY_ALGS:
            continue
        try:
            keys[kid] = jwt.PyJWK(raw)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
    return keys


class JwksVerifier:
    """Verify bearer tokens against the issuer's JWKS (docs/gateway.md "Authentication", ADR-4 in
    docs/architecture.md).

    Keys:

    - are cached for ``cache_seconds``. The first request that finds them older starts one
      refetch in the background and is served with the keys it has (stale-while-revalidate);
    - an unknown ``kid`` refetches the set, which is how a key rotation at the issuer reaches
      every verifier without a restart, at most every ``min_refetch_seconds`` so that made-up
      key ids cannot cause a fetch storm;
    - are fetched by one fetch at a time, bounded by ``fetch_timeout`` seconds. Requests that
      need its result (no key for their ``kid``) share it; requests that have a key never wait.

    When the JWKS cannot be fetched (connection error, timeout, non-2xx answer, not JSON, wrong
    shape), the issuer is having an outage; the token is not bad:

    - the last good keys stay in use, also past ``cache_seconds``;
    - each consecutive failure pushes the next fetch back by ``backoff`` (capped exponential
      with jitter); until then no request fetches, none waits on a fetch;
    - a token whose ``kid`` is not among the last good keys gets 503 (``ServiceUnavailable``
      with ``Retry-After``: the seconds until the next fetch), never 401. The verifier cannot
      tell a made-up key id from a key the issuer rotated in while it was unreachable, and a
      401 makes a client throw a good token away (docs/CONVENTIONS.md "Status codes"). No fetch
      happens for it before the backoff allows, so a made-up ``kid`` costs nothing either way.

    The state shows in readiness as a degraded dependency (``check``) and as the metrics
    ``jwks_refresh_failures_total`` and ``jwks_keys_age_seconds``.
    """

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        cache_seconds: float = 300.0,
        min_refetch_seconds: float = 5.0,
        leeway: float = 5.0,
        fetch_timeout: float = 3.0,
        backoff: Backoff | None = None,
        service: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.issuer = issuer
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.leeway = leeway
        self.fetch_timeout = fetch_timeout
        self.backoff = backoff or Backoff(initial=1.0, cap=30.0)
        self.service = service
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # clock() of the last successful fetch
        self._fetched_at_wall: float | None = None  # the same moment, as a Unix time
        self._last_attempt = -math.inf
        self._next_attempt = -math.inf  # no fetch before this clock() value (backoff)
        self._failures = 0  # consecutive failed fetches
        self._failing_since: float | None = None  # Unix time of the first of them
        self._last_error = ""
        self._inflight: asyncio.Task[None] | None = None
        #: Fetches started so far (tests and logs read it).
        self.fetches = 0
        if service:
            JWKS_KEYS_AGE.labels(service).set_function(self.keys_age)

    @classmethod
    def from_settings(
        cls,
        settings: BaseServiceSettings,
        *,
        url: str | None = None,
        fetch: JwksFetcher | None = None,
    ) -> JwksVerifier:
        """A verifier configured by the ``JWT_*`` and ``JWKS_*`` settings; it fetches ``url``
        (default ``JWKS_URL``) over HTTP unless ``fetch`` is given (member reads its own keys)."""
        fetcher = fetch or http_jwks_fetcher(
            url or settings.JWKS_URL, settings.JWKS_FETCH_TIMEOUT_SECONDS
        )
        return cls(
            fetcher,
            issuer=settings.JWT_ISSUER,
            audience=settings.JWT_AUDIENCE,
            cache_seconds=settings.JWKS_CACHE_SECONDS,
            min_refetch_seconds=settings.JWKS_MIN_REFETCH_SECONDS,
            fetch_timeout=settings.JWKS_FETCH_TIMEOUT_SECONDS,
            backoff=Backoff(
                initial=settings.JWKS_RETRY_BACKOFF_SECONDS,
                cap=settings.JWKS_RETRY_BACKOFF_MAX_SECONDS,
            ),
            service=settings.SERVICE_NAME,
        )

    @property
    def failing(self) -> bool:
        """True from a failed fetch until the next successful one."""
        return self._failing_since is not None

    def keys_age(self) -> float:
        """Seconds since the keys in use were fetched; NaN before the first successful fetch."""
        return math.nan if self._fetched_at is None else self._clock() - self._fetched_at

    async def check(self) -> None:
        """Readiness check, registered as degraded (``install_verifier``): raises ``NotReady``
        while the JWKS cannot be fetched, naming when that began and which keys are in use."""
        if self._failing_since is None:
            return
        since = _iso(self._failing_since)
        using = (
            f"using keys fetched at {_iso(self._fetched_at_wall)}"
            if self._fetched_at_wall is not None
            else "no keys: token checks get 503"
        )
        raise NotReady(
            f"JWKS unavailable since {since} ({self._failures} failed fetches); {using}; "
            f"last error: {self._last_error}"
        )

    async def aclose(self) -> None:
        """Cancel a fetch in flight (shutdown)."""
        task = self._inflight
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _current_fetch(self) -> asyncio.Task[None] | None:
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            return None
        return task

    def _start_fetch(self, now: float) -> asyncio.Task[None]:
        self._last_attempt = now
        self.fetches += 1
        task = asyncio.get_running_loop().create_task(self._refresh(), name="jwks refresh")
        self._inflight = task
        return task

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(self.fetch_timeout):
                document = await self._fetch()
            keys = parse_jwks(document)
        except Exception as exc:  # whatever the cause, the issuer's keys cannot be had now
            self._failed(exc)
        else:
            self._succeeded(keys)

    def _succeeded(self, keys: dict[str, jwt.PyJWK]) -> None:
        if self._failing_since is not None:
            log.info("jwks.recovered", failed_fetches=self._failures)
        self._keys = keys
        self._fetched_at = self._clock()
        self._fetched_at_wall = time.time()
        self._failures = 0
        self._failing_since = None
        self._last_error = ""
        self._next_attempt = -math.inf

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = time.time()
        self._last_error = f"{type(exc).__name__}: {exc}"[:160]
        delay = self.backoff.delay(self._failures)
        self._next_attempt = self._clock() + delay
        JWKS_REFRESH_FAILURES.labels(self.service).inc()
        log.warning(
            "jwks.fetch_failed",
            error=self._last_error,
            failed_fetches=self._failures,
            next_fetch_in_s=round(delay, 2),
            keys_in_use=len(self._keys),
        )

    def _refuse_while_unavailable(self, now: float) -> None:
        """503 when the JWKS is failing: the answer about this ``kid`` is not known."""
        if self._failing_since is None:
            return
        retry_after = max(1, math.ceil(self._next_attempt - now))
        raise ServiceUnavailable(
            "the keys to check this token cannot be fetched from the issuer",
            headers={"Retry-After": str(retry_after)},
        )

    async def _key_for(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``; None when the issuer, just asked, does not have it. Raises
        ServiceUnavailable when it cannot be asked (see the class docstring)."""
        now = self._clock()
        key = self._keys.get(kid)
        fresh = self._fetched_at is not None and now - self._fetched_at < self.cache_seconds
        if key is not None:
            if not fresh and now >= self._next_attempt and self._current_fetch() is None:
                self._start_fetch(now)  # revalidate in the background; this request goes on
            return key
        task = self._current_fetch()
        if task is None:
            # A stale or missing set is fetched whenever the backoff allows; a fresh set that
            # lacks this kid at most every min_refetch_seconds.
            allowed = now >= self._next_attempt and (
                not fresh or now - self._last_attempt >= self.min_refetch_seconds
            )
            if not allowed:
                self._refuse_while_unavailable(now)
                return None
            task = self._start_fetch(now)
        # shield: a caller that goes away does not cancel the fetch the others wait for
        await asyncio.shield(task)
        key = self._keys.get(kid)
        if key is None:
            self._refuse_while_unavailable(self._clock())
        return key

    async def verify(self, token: str) -> Principal:
        """The caller named by ``token``. Raises Unauthorized (401) for a token that is not
        valid, ServiceUnavailable (503, ``Retry-After``) when its key cannot be looked up."""
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


def _iso(unix_time: float) -> str:
    return dt.datetime.fromtimestamp(unix_time, dt.UTC).isoformat(timespec="seconds")


def install_verifier(app: FastAPI, verifier: JwksVerifier) -> None:
    """Make ``verifier`` the app's token verifier (``app.state.verifier``, read per request, so
    a test may replace it), show its JWKS state in readiness as a degraded dependency ``jwks``
    (docs/CONVENTIONS.md "Degraded dependencies": the process still answers what needs no token) and
    cancel its fetch in flight on shutdown."""
    app.state.verifier = verifier

    async def check_jwks() -> None:
        current = app.state.verifier
        if isinstance(current, JwksVerifier):
            await current.check()

    async def close_jwks() -> None:
        current = app.state.verifier
        if isinstance(current, JwksVerifier):
            await current.aclose()

    app.state.health.add_check("jwks", check_jwks, degraded=True)
    app.state.runtime.on_shutdown("jwks refresh", close_jwks, Phase.POOLS)


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
