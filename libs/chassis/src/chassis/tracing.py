"""Distributed tracing: OpenTelemetry, exported over OTLP only when OTEL_* variables ask for it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

_configured = False


class ExportAwareSampler(Sampler):
    """The default sampler: record spans only when something exports them.

    With an exporter every trace is sampled unless its parent says otherwise (the SDK's
    default, ``parentbased_always_on``). Without one, a new trace is not sampled
    (``parentbased_always_off``, as ``parentbased_traceidratio`` with ratio 0): its spans are
    non-recording, so they cost an id and a context, not attributes, events and a processor,
    while their trace and span ids are still valid and still reach every log line and the
    ``traceparent`` of every outgoing request and Kafka message. A sampled parent (a caller
    that exports) is still honoured, so its trace continues through this process.
    ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``, when set, replace this default
    (the OpenTelemetry SDK's own reading of them)."""

    def __init__(self) -> None:
        self.exporting = False
        self._sampled = ParentBased(ALWAYS_ON)
        self._unsampled = ParentBased(ALWAYS_OFF)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        chosen = self._sampled if self.exporting else self._unsampled
        return chosen.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"ExportAwareSampler{{exporting={self.exporting}}}"


def _sampler() -> ExportAwareSampler | None:
    """None (the SDK reads ``OTEL_TRACES_SAMPLER``) when the environment names a sampler."""
    return None if os.environ.get("OTEL_TRACES_SAMPLER") else ExportAwareSampler()


def _now_exporting(provider: TracerProvider) -> None:
    if isinstance(provider.sampler, ExportAwareSampler):
        provider.sampler.exporting = True


def configure_tracing(service: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Install a tracer provider once per process.

    The provider always exists, so trace ids reach the logs and the Kafka headers; spans
    leave the process only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or an explicit exporter,
    as in tests) is given, and are recorded only then (``ExportAwareSampler``, unless
    ``OTEL_TRACES_SAMPLER`` chooses another sampler). ``OTEL_SDK_DISABLED=true`` turns
    everything off.
    """
    global _configured
    current = trace.get_tracer_provider()
    if _configured and isinstance(current, TracerProvider):
        if exporter is not None:
            current.add_span_processor(BatchSpanProcessor(exporter))
            _now_exporting(current)
        return current
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service)}),
        sampler=_sampler(),
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _now_exporting(provider)
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _now_exporting(provider)
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true":
        trace.set_tracer_provider(provider)
    _configured = True
    _instrument_libraries()
    return provider


def _instrument_libraries() -> None:
    """Auto-instrument the client libraries every service uses."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (HTTPXClientInstrumentor(), RedisInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def instrument_app(app: Any) -> None:
    """Server spans for every FastAPI route.

    One span per request: the ASGI "http receive" / "http send" child spans (one per message)
    add nothing the server span does not say, and cost more than the rest of a fast request.
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
    )


def instrument_engine(sync_engine: Any) -> None:
    """Client spans for every SQL statement of one engine."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=sync_engine)


def tracer(name: str = "chassis") -> trace.Tracer:
    return trace.get_tracer(name)
