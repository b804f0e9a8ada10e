"""Application metrics: Prometheus counters and histograms, scraped at /metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served.", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests in progress.", ["service"])
OUTBOX_PENDING = Gauge("outbox_pending", "Outbox rows not yet published.", ["service"])
OUTBOX_PUBLISHED = Counter(
    "outbox_published_total", "Outbox rows published to Kafka.", ["service", "topic"]
)
CONSUMER_LAG = Gauge(
    "kafka_consumer_lag", "Messages behind the log end.", ["service", "topic", "partition", "group"]
)
MESSAGES_HANDLED = Counter(
    "kafka_messages_handled_total",
    "Messages handled by consumers.",
    ["service", "topic", "outcome"],
)
DEAD_LETTERS = Counter("kafka_dead_letters_total", "Messages sent to a DLQ.", ["service", "topic"])
CONSUMER_WAITING = Gauge(
    "consumer_waiting_partitions",
    "Partitions whose consumer is waiting out a transient failure (not moving past a message).",
    ["service", "group"],
)
CONSUMER_TRANSIENT_FAILURES = Counter(
    "consumer_transient_failures_total",
    "Handler failures a consumer waits out (infrastructure unavailable), by topic.",
    ["service", "topic", "group"],
)
DEGRADED_DEPENDENCY_FAILURES = Counter(
    "degraded_dependency_failures_total",
    "Calls to a dependency the process degrades around (Redis) that failed and were bypassed.",
    ["service", "dependency", "operation"],
)
DEPENDENCY_UP = Gauge(
    "dependency_up",
    "1 when the named readiness check (a dependency, or a consumer not stuck) last passed.",
    ["service", "dependency"],
)
PROCESS_READY = Gauge(
    "process_ready",
    "1 when the process's readiness check (/readyz) passes, 0 when it answers 503; evaluated at "
    "each /readyz and each scrape of /metrics (alert ProcessNotReady).",
    ["service"],
)
JWKS_REFRESH_FAILURES = Counter(
    "jwks_refresh_failures_total",
    "Fetches of the issuer's JWKS that failed (connection, timeout, non-2xx, not a key set).",
    ["service"],
)
JWKS_KEYS_AGE = Gauge(
    "jwks_keys_age_seconds",
    "Seconds since the signing keys in use were fetched (NaN before the first fetch).",
    ["service"],
)
PROJECTION_CHECKPOINT = Gauge(
    "projection_checkpoint_offset",
    "Last offset applied by a read-model projection.",
    ["service", "projection", "topic", "partition"],
)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition format. The readiness check runs first (``process_ready`` and
    ``dependency_up`` are then current at every scrape, not only when something probes
    ``/readyz``); it answers within ``chassis.health.CHECK_TIMEOUT_SECONDS``."""
    health = getattr(request.app.state, "health", None)
    if health is not None:
        await health.ready()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI middleware recording the golden signals per route template."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        HTTP_IN_FLIGHT.labels(self.service).inc()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_IN_FLIGHT.labels(self.service).dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, template).observe(time.perf_counter() - start)
