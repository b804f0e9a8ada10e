"""Application metrics of the edge: upstream calls by route and outcome, their latency, errors, breakers.

The chassis already records the golden signals of every request the gateway serves
(``http_requests_total`` ...); these add what only the gateway knows: what happened upstream.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

UPSTREAM_REQUESTS = Counter(
    "gateway_upstream_requests_total",
    "Requests forwarded upstream, by final outcome: success (answered below 500), error "
    "(answered 5xx), timeout, unavailable (could not connect) or circuit_open (not sent).",
    ["upstream", "route", "outcome"],
)
UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_duration_seconds",
    "Time spent upstream per route, retries included.",
    ["upstream", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Failed upstream attempts (each retry counts): kind is transport (could not connect, or the "
    "connection broke), timeout or status_5xx.",
    ["upstream", "route", "kind"],
)
BREAKER_STATE = Gauge(
    "gateway_breaker_state",
    "Circuit breaker per upstream: 0 closed, 1 open, 2 half-open.",
    ["upstream"],
)
REPLICA_READY = Gauge(
    "gateway_upstream_replica_ready",
    "Per replica of an upstream given as a list of URLs: 1 in the rotation, 0 out of it (its "
    "/readyz health check failed, or it refused a connection). A single URL is not listed.",
    ["upstream", "replica"],
)
RATE_LIMITED = Counter(
    "gateway_rate_limited_total", "Requests refused with 429, by key kind.", ["kind"]
)
RATE_LIMIT_ERRORS = Counter(
    "gateway_rate_limit_errors_total",
    "Rate-limit checks that could not reach Redis (the request was let through).",
)
TOKEN_DENYLIST_ERRORS = Counter(
    "gateway_token_denylist_errors_total",
    "Token deny-list reads that could not reach Redis (the verified token was let through).",
)

OUTCOMES = ("success", "error", "timeout", "unavailable", "circuit_open")
ERROR_KINDS = ("transport", "timeout", "status_5xx", "too_large")


@dataclass(frozen=True)
class RouteMetrics:
    """The label children of one (upstream, route), resolved once instead of on every request."""

    latency: Histogram
    outcomes: dict[str, Counter]
    errors: dict[str, Counter]

    @classmethod
    def of(cls, upstream: str, route: str) -> RouteMetrics:
        return cls(
            latency=UPSTREAM_LATENCY.labels(upstream, route),
            outcomes={o: UPSTREAM_REQUESTS.labels(upstream, route, o) for o in OUTCOMES},
            errors={k: UPSTREAM_ERRORS.labels(upstream, route, k) for k in ERROR_KINDS},
        )
