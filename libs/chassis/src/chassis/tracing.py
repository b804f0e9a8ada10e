"""Distributed tracing: OpenTelemetry, exported over OTLP only when OTEL_* variables ask for it."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

_configured = False


def configure_tracing(service: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Install a tracer provider once per process.

    The provider always exists, so trace ids reach the logs and the Kafka headers; spans
    leave the process only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or an explicit exporter,
    as in tests) is given. ``OTEL_SDK_DISABLED=true`` turns everything off.
    """
    global _configured
    current = trace.get_tracer_provider()
    if _configured and isinstance(current, TracerProvider):
        if exporter is not None:
            current.add_span_processor(BatchSpanProcessor(exporter))
        return current
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service)})
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
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
