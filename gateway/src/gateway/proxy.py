"""Reverse proxy: the edge checks in order, then one pooled, time-bounded, retried call upstream.

For every request that is not the gateway's own (health, metrics, docs, dashboard):

1. the route table resolves the method and path (404 / 405 problem otherwise); a page path
   outside the API resolves to the web front end (``routes.FRONT_END``);
2. the request shape is bounded: query string (414), headers (431), body (413);
3. the caller is identified from the bearer token (``auth.py``) and counted (``ratelimit.py``,
   429); a protected route without a valid token is refused (401); a front-end page reads no
   token and is counted by client address;
4. the request goes to its upstream through that upstream's circuit breaker (``breaker.py``),
   to the next ready replica (``replicas.py``) through its connection pool (``pool.py``): a
   per-route deadline (504), failover to another replica when a connection is refused, retries
   for idempotent methods only, 503 when the upstream cannot be reached or its circuit is open;
5. the upstream's answer, 4xx and 5xx included, goes back as it is, minus hop-by-hop headers.

The refusals and failures of steps 1-4 are problem documents; on a page path ``pages.py``
turns them into an HTML page, and leaves the answer of step 5 alone.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry import trace
from starlette.types import Receive, Scope, Send

from chassis.auth import Principal
from chassis.logging import get_logger
from chassis.problems import (
    BadGateway,
    GatewayTimeout,
    HeadersTooLarge,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UriTooLong,
)
from gateway.auth import EdgeAuth, TokenRevoked
from gateway.breaker import CircuitBreaker
from gateway.config import Settings
from gateway.metrics import BREAKER_STATE, RouteMetrics
from gateway.pages import mark_relayed
from gateway.pool import (
    ConnectFailed,
    ConnectionPool,
    ResponseTooLarge,
    UpstreamError,
    UpstreamReply,
)
from gateway.ratelimit import RateLimiter, client_key
from gateway.replicas import HealthChecker, Replica, ReplicaSet
from gateway.routes import ANONYMOUS, TOKEN, Access, RouteTable

log = get_logger(__name__)
tracer = trace.get_tracer("gateway")

#: Only these are retried: a repeated GET cannot do anything twice.
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Answers that say the upstream is not serving (it, or a proxy or replica in front of it, is
#: down, overloaded or not ready): the breaker counts them, and idempotent calls are retried.
#: Any other answer, a 500 included, is a verdict on one request (see ``breaker.py``).
FAILURE_STATUSES = frozenset({502, 503, 504})

#: Connection-level headers (RFC 9110 §7.6.1): they describe one hop and are never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Request headers the gateway sets itself. The forwarding headers are among them: a service
#: believes them because they come from the gateway, so a client's own must never pass.
_REPLACED_REQUEST = frozenset(
    {
        b"host",
        b"content-length",
        b"expect",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
    }
)
_DROPPED_REQUEST = HOP_BY_HOP | _REPLACED_REQUEST
#: Response headers the gateway's own server writes (the request id is added by the chassis).
_DROPPED_RESPONSE = HOP_BY_HOP | {b"content-length", b"date", b"server", b"x-request-id"}


class ClientDisconnected(Exception):
    """The caller went away while its request body was being read."""


def _state_reader(breaker: CircuitBreaker) -> Callable[[], float]:
    return lambda: float(breaker.state)


class Upstream:
    """One upstream service: its replicas (one address, or several that the gateway balances
    over, ``replicas.py``), and one circuit breaker for the service as a whole."""

    def __init__(self, name: str, urls: list[str], breaker: CircuitBreaker) -> None:
        self.name = name
        self.replica_set = ReplicaSet(name, urls)
        self.breaker = breaker

    @property
    def replicas(self) -> list[Replica]:
        return self.replica_set.replicas


class Upstreams:
    """Every upstream's replicas (each with its connection pool), breaker and health checks, and
    the resilient call used by the proxy, the dashboard and the docs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.attempts = settings.UPSTREAM_RETRY_ATTEMPTS
        self.backoff = settings.UPSTREAM_RETRY_BACKOFF_SECONDS
        self.max_backoff = settings.UPSTREAM_RETRY_MAX_BACKOFF_SECONDS
        self.by_name: dict[str, Upstream] = {}
        for name, urls in settings.upstream_replicas().items():
            breaker = CircuitBreaker(
                name,
                failure_threshold=settings.BREAKER_FAILURE_THRESHOLD,
                reset_seconds=settings.BREAKER_RESET_SECONDS,
            )
            # Read at scrape time, so a circuit that has waited out its reset shows half-open.
            BREAKER_STATE.labels(name).set_function(_state_reader(breaker))
            self.by_name[name] = Upstream(name, urls, breaker)
        self._metrics: dict[tuple[str, str], RouteMetrics] = {}
        self.health_checks = HealthChecker(
            [u.replica_set for u in self.by_name.values()],
            interval=settings.UPSTREAM_HEALTH_CHECK_INTERVAL_SECONDS,
            timeout=settings.UPSTREAM_HEALTH_CHECK_TIMEOUT_SECONDS,
        )

    def __getitem__(self, name: str) -> Upstream:
        return self.by_name[name]

    async def open(self) -> None:
        """Create one connection pool per replica (lifespan startup; nothing connects yet)."""
        for replica in (r for u in self.by_name.values() for r in u.replicas):
            replica.pool = ConnectionPool(
                replica.url,
                max_connections=self.settings.UPSTREAM_MAX_CONNECTIONS,
                # The whole exchange is bounded by the route's deadline (see ``call``); only
                # connecting has its own, shorter bound so a dead address fails fast.
                connect_timeout=self.settings.UPSTREAM_CONNECT_TIMEOUT_SECONDS,
                max_response_bytes=self.settings.UPSTREAM_MAX_RESPONSE_BYTES,
            )

    async def aclose(self) -> None:
        for replica in (r for u in self.by_name.values() for r in u.replicas):
            if replica.has_pool:
                await replica.pool.aclose()

    def metrics(self, upstream: str, route: str) -> RouteMetrics:
        key = (upstream, route)
        found = self._metrics.get(key)
        if found is None:
            found = self._metrics[key] = RouteMetrics.of(upstream, route)
        return found

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))

    async def call(
        self,
        upstream: Upstream,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        timeout: float,
        route: str,
    ) -> UpstreamReply:
        """Send one request upstream within ``timeout`` seconds, retries included.

        Raises GatewayTimeout (504) when the deadline passes, ServiceUnavailable (503) when
        the upstream cannot be reached or its circuit is open, and BadGateway (502) when its
        answer is larger than ``UPSTREAM_MAX_RESPONSE_BYTES``. Every answer the upstream gives,
        5xx included, is returned as it is.

        Replicas (``replicas.py``): each attempt goes to the next replica in round-robin order.
        A refused connection (``ConnectFailed``: nothing was sent) takes that replica out of the
        rotation and the attempt fails over to the next replica, for every method, without
        using up an attempt. A connection that broke after the request may have been sent
        (``ConnectionBroken``) is retried on the next replica only for an idempotent method.

        The breaker counts a failure for a connection error, a timeout and a 502/503/504
        answer, and a success for any other answer: a 4xx, and a 500 that one request
        provoked, must not let one client open the circuit for everyone (docs/CONVENTIONS.md
        "Fairness"). The failures of a call's attempts are told to the breaker only when the
        call fails as a whole: an attempt that failed on one replica and succeeded on the next
        shows a service that serves, so a replica restarting never opens the circuit. Every
        5xx answer is counted in ``gateway_upstream_errors_total{kind="status_5xx"}``, so a
        sustained rate of 500s stays visible per route.
        """
        metrics = self.metrics(upstream.name, route)
        breaker = upstream.breaker
        replicas = upstream.replica_set
        order = replicas.order()
        attempts = self.attempts if method in RETRYABLE_METHODS else 1
        outcome = "unavailable"
        failures = 0  # failed attempts, told to the breaker unless a later attempt succeeds
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                at = 0  # index in ``order`` of the replica the next attempt goes to
                for attempt in range(1, attempts + 1):
                    if not breaker.allow():
                        outcome = "circuit_open"
                        raise ServiceUnavailable(
                            f"{upstream.name} is unavailable (circuit open)",
                            headers={"Retry-After": str(max(1, round(breaker.retry_after())))},
                        )
                    tried = 0
                    while True:
                        replica = order[at % len(order)]
                        at += 1
                        tried += 1
                        try:
                            reply = await replica.pool.request(method, target, headers, body)
                        except ConnectFailed as exc:
                            replicas.eject(replica, str(exc))
                            if tried < len(order):
                                # Nothing was sent: any method may go to the next replica.
                                log.info(
                                    "upstream.failover",
                                    upstream=upstream.name,
                                    route=route,
                                    replica=replica.url,
                                )
                                continue
                            error: UpstreamError | None = exc
                        except UpstreamError as exc:
                            error = exc
                        else:
                            error = None
                        break
                    if error is not None:
                        failures += 1
                        metrics.errors["transport"].inc()
                        log.warning(
                            "upstream.failed",
                            upstream=upstream.name,
                            route=route,
                            attempt=attempt,
                            replica=replica.url,
                            error=f"{type(error).__name__}: {error}",
                        )
                    else:
                        if reply.status >= 500:
                            metrics.errors["status_5xx"].inc()
                        if reply.status not in FAILURE_STATUSES:
                            # It answered: up and serving, whatever this request deserved.
                            breaker.record_success()
                            failures = 0
                            outcome = "success" if reply.status < 500 else "error"
                            return reply
                        failures += 1
                        if attempt == attempts:
                            outcome = "error"
                            return reply
                    if attempt < attempts:
                        await asyncio.sleep(self.delay(attempt - 1))
                raise ServiceUnavailable(f"{upstream.name} is unavailable")
        except ResponseTooLarge as exc:
            breaker.record_success()  # it answered: alive, just too much
            failures = 0
            metrics.errors["too_large"].inc()
            outcome = "error"
            log.warning("upstream.too_large", upstream=upstream.name, route=route)
            raise BadGateway(f"{upstream.name}: {exc}") from None
        except TimeoutError:
            failures += 1
            metrics.errors["timeout"].inc()
            outcome = "timeout"
            log.warning("upstream.timeout", upstream=upstream.name, route=route, timeout=timeout)
            raise GatewayTimeout(f"{upstream.name} did not answer within {timeout:g} s") from None
        finally:
            for _ in range(failures):
                breaker.record_failure()
            metrics.outcomes[outcome].inc()
            metrics.latency.observe(time.perf_counter() - started)


@dataclass
class ForwardedRequest:
    """What the edge needs from the incoming headers, read in one pass."""

    headers: list[tuple[bytes, bytes]]
    authorization: str | None
    content_length: int | None

    def without_authorization(self) -> ForwardedRequest:
        """The same request without its ``Authorization`` header (an ``ANONYMOUS`` route's
        upstream never checks one, so it does not get it)."""
        headers = [(n, v) for n, v in self.headers if n != b"authorization"]
        return ForwardedRequest(headers, None, self.content_length)


def forwarded_for(client_ip: str) -> list[tuple[bytes, bytes]]:
    """The forwarding header the services read: ``X-Forwarded-For: <client>``, one address.

    ``client_ip`` is the client as this gateway's server resolved it: the TCP peer, or, when
    the peer is a trusted proxy (``FORWARDED_ALLOW_IPS``, e.g. the Ingress controller), the
    last address of the chain that a trusted proxy did not add. Whatever else the incoming
    chain held was written by the client or by hops nobody vouches for, and is dropped: a
    service that trusts the gateway takes the last untrusted address of the chain it gets,
    so passing the client's own entries on would let a loopback or in-cluster client (whose
    real address a service also trusts) choose the address a service sees."""
    return [(b"x-forwarded-for", client_ip.encode())]


def forward_request_headers(
    raw: Iterable[tuple[bytes, bytes]],
    *,
    request_id: str,
    client_ip: str,
    max_bytes: int,
    scheme: str = "http",
) -> ForwardedRequest:
    """Everything but hop-by-hop headers goes upstream (Authorization untouched, Idempotency-Key,
    Content-Type, Accept, traceparent ...), plus the request id, ``X-Forwarded-For`` (see
    ``forwarded_for``), ``X-Forwarded-Proto: <scheme>``, the scheme the client used as this
    gateway's server resolved it, and ``X-Forwarded-Host: <the client's Host>`` (the upstream
    gets the upstream's own ``Host``; web compares a form post's ``Origin`` with the host the
    browser asked for). The client's own forwarding headers are dropped."""
    headers: list[tuple[bytes, bytes]] = []
    size = 0
    authorization: bytes | None = None
    content_length: bytes | None = None
    connection: bytes | None = None
    host: bytes | None = None
    for name, value in raw:
        size += len(name) + len(value)
        if name in _DROPPED_REQUEST:
            if name == b"content-length":
                content_length = value
            elif name == b"connection":
                connection = value
            elif name == b"host":
                host = value
            continue
        if name == b"authorization":
            authorization = value
        headers.append((name, value))
    if size > max_bytes:
        raise HeadersTooLarge(f"request headers exceed {max_bytes} bytes")
    if connection:
        # Headers named in Connection are hop-by-hop for this request too.
        listed = {token.strip().lower() for token in connection.split(b",")}
        headers = [(n, v) for n, v in headers if n not in listed]
    headers.append((b"x-request-id", request_id.encode()))
    headers.extend(forwarded_for(client_ip))
    headers.append((b"x-forwarded-proto", scheme.encode()))
    if host:
        headers.append((b"x-forwarded-host", host))
    length: int | None = None
    if content_length is not None:
        try:
            length = int(content_length)
        except ValueError:
            length = None
    return ForwardedRequest(
        headers,
        authorization.decode("latin-1") if authorization is not None else None,
        length,
    )


def reply_headers(reply: UpstreamReply) -> list[tuple[bytes, bytes]]:
    headers = [(n, v) for n, v in reply.headers if n.lower() not in _DROPPED_RESPONSE]
    if reply.status >= 200 and reply.status not in (204, 304):
        headers.append((b"content-length", str(len(reply.body)).encode()))
    return headers


async def read_body(receive: Receive, declared: int | None, limit: int) -> bytes:
    """The whole request body, refused (413) once it passes ``limit`` bytes."""
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def client_ip_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def request_id_of(scope: Scope) -> str:
    """The id the chassis middleware echoed or minted for this request."""
    state = scope.get("state") or {}
    return str(state.get("request_id") or uuid.uuid4().hex)


async def admit(
    auth: EdgeAuth,
    limiter: RateLimiter,
    access: Access,
    authorization: str | None,
    client_ip: str,
    *,
    reads_token: bool = True,
) -> Principal | None:
    """Identify the caller, count the request, then enforce the route's access rule. Counting
    comes before refusing so that guessing tokens is rate-limited like anything else.

    A token that cannot be checked because the JWKS is unavailable (503) refuses a TOKEN route
    with that 503; a PUBLIC route goes on as anonymous, like with an invalid token, so that
    sign-up, login and refresh (member checks its own tokens) do not depend on the key fetch.


    A revoked token (its member withdrew, ``TokenRevoked``) is refused with 401 on every route
    whose upstream reads the token, PUBLIC ones included: the upstream would accept the
    signature and act for the withdrawn member. Only where the upstream ignores the header
    (``reads_token=False``: sign-up, login, refresh, logout) is it let through as anonymous.

    An ``ANONYMOUS`` route (the front end's pages) does not look at the header at all: the
    request is counted by ``client_ip`` like any anonymous one, and no token, valid, stale or
    revoked, changes its fate."""
    principal: Principal | None = None
    refusal: Unauthorized | ServiceUnavailable | None = None
    if authorization and access is not ANONYMOUS:
        try:
            principal = await auth.authenticate(authorization)
        except (Unauthorized, ServiceUnavailable) as exc:
            refusal = exc
    await limiter.check(client_key(principal, client_ip))
    if access is TOKEN and principal is None:
        raise refusal or Unauthorized()
    if reads_token and isinstance(refusal, TokenRevoked):
        raise refusal
    return principal


class Proxy:
    """The ASGI app behind every route-table path (installed as the router's default)."""

    def __init__(
        self,
        table: RouteTable,
        upstreams: Upstreams,
        auth: EdgeAuth,
        limiter: RateLimiter,
        settings: Settings,
    ) -> None:
        self.table = table
        self.upstreams = upstreams
        self.auth = auth
        self.limiter = limiter
        self.settings = settings
        self.default_timeouts = settings.upstream_timeouts()
        self.max_body = settings.MAX_BODY_BYTES
        self.max_headers = settings.MAX_HEADER_BYTES
        self.max_query = settings.MAX_QUERY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        match = self.table.resolve(method, scope["path"])
        route = match.route
        scope["route"] = route  # the chassis labels its HTTP metrics with ``route.path``
        span = trace.get_current_span()
        if span.is_recording():  # name the server span after the template, not the raw path
            span.update_name(route.name)
            span.set_attribute("http.route", route.path)
        query: bytes = scope.get("query_string", b"")
        if len(query) > self.max_query:
            raise UriTooLong(f"the query string exceeds {self.max_query} bytes")
        client_ip = client_ip_of(scope)
        incoming = forward_request_headers(
            scope["headers"],
            request_id=request_id_of(scope),
            client_ip=client_ip,
            max_bytes=self.max_headers,
            scheme=scope.get("scheme", "http"),
        )
        if route.access is ANONYMOUS:
            incoming = incoming.without_authorization()
        await admit(
            self.auth,
            self.limiter,
            route.access,
            incoming.authorization,
            client_ip,
            reads_token=route.reads_token,
        )
        try:
            body = await read_body(receive, incoming.content_length, self.max_body)
        except ClientDisconnected:
            return
        target = match.upstream_path
        if query:
            target = f"{target}?{query.decode('latin-1')}"
        reply = await self.upstreams.call(
            self.upstreams[route.upstream],
            method,
            target,
            incoming.headers,
            body,
            timeout=route.timeout or self.default_timeouts[route.upstream],
            route=route.name,
        )
        mark_relayed(scope)  # web's answer, whatever its type, is not the gateway's to rewrite
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": reply_headers(reply)}
        )
        await send({"type": "http.response.body", "body": reply.body})
