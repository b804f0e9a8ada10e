"""Distributed tracing: OpenTelemetry, exported (OTLP, Zipkin, console) only when OTEL_* variables ask for it."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from chassis.logging import get_logger

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


#: The values ``OTEL_TRACES_EXPORTER`` may list (OpenTelemetry specification, "Exporter
#: selection" of the SDK environment variables): ``otlp`` (OTLP over HTTP/protobuf),
#: ``zipkin`` (Zipkin's JSON v2 API), ``console`` (one JSON object per span on stdout),
#: ``none`` (no exporter).
TRACES_EXPORTERS = ("otlp", "zipkin", "console", "none")


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable names something this process cannot do (raised at startup)."""


def _otlp_endpoint_set() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def selected_exporters() -> list[str]:
    """The exporter names ``OTEL_TRACES_EXPORTER`` selects, in order, without duplicates.

    The variable is a comma-separated list (blanks around names ignored, names
    case-insensitive), as the OpenTelemetry specification defines it. Unset or empty keeps
    this project's rule from before the variable was read: ``["otlp"]`` when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, else
    ``[]`` (the specification's default is ``otlp`` whatever the endpoint; exporting to a
    collector nobody runs would only fill the logs with export errors). ``none`` gives ``[]``
    and may not be combined with another name.

    Raises :class:`TracingConfigError` naming the variable and the allowed values for an
    unknown name, an empty item or ``none`` among others.
    """
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        return ["otlp"] if _otlp_endpoint_set() else []
    names = [n.strip().lower() for n in raw.split(",")]
    allowed = ", ".join(TRACES_EXPORTERS)
    wrong = [n for n in names if n not in TRACES_EXPORTERS]
    if wrong:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: unknown exporter {wrong[0]!r}; "
            f"allowed: a comma-separated list of {allowed}"
        )
    if "none" in names and len(set(names)) > 1:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: 'none' cannot be combined with other exporters "
            f"(allowed: a comma-separated list of {allowed})"
        )
    return [n for n in dict.fromkeys(names) if n != "none"]


#: While an exporter keeps failing, at most one warning per this many seconds.
EXPORT_FAILURE_REPORT_SECONDS = 60.0

_log = get_logger("chassis.tracing")


class _Swallowed(threading.local):
    """Per thread: whether a guarded export runs, and the first message its exporter logged."""

    active = False
    first: str | None = None


class _SwallowDuringExport(logging.Filter):
    """Keeps an exporter's own log records (the OTLP client's retry warnings, Zipkin's status
    errors) out of the logs while :class:`ReportingSpanExporter` runs it on this thread; the
    first one's message becomes the reason that exporter's report gives."""

    def __init__(self, state: _Swallowed) -> None:
        super().__init__()
        self.state = state

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.state.active:
            return True
        if self.state.first is None:
            self.state.first = record.getMessage()
        return False


class ReportingSpanExporter(SpanExporter):
    """A span exporter that reports an unreachable backend as a state, not once per batch.

    The SDK's ``BatchSpanProcessor`` logs every exception of ``export`` with its traceback
    (``Exception while exporting Span.``), and the exporters log every failed batch
    themselves: a trace backend that stops would put an error with a traceback into every
    process's log every ``OTEL_BSP_SCHEDULE_DELAY``. Around ``delegate`` (any exporter: OTLP,
    Zipkin, console) this catches the exception, keeps the exporter's own records of the
    attempt out of the logs, and logs instead (logger ``chassis.tracing``):

    - one warning ``trace_export.failing`` (exporter, endpoint, reason; no traceback) at the
      first failed batch;
    - at most one warning ``trace_export.still_failing`` per ``report_every`` seconds (default
      :data:`EXPORT_FAILURE_REPORT_SECONDS`) while batches keep failing, with how many failed;
    - one info ``trace_export.recovered`` at the next success, with the failed batches' count.

    The spans of a failed batch are dropped (as the SDK does); ``export`` never raises and
    returns the delegate's result (``FAILURE`` for an exception). ``clock`` gives seconds
    (``time.monotonic``; tests pass their own).
    """

    def __init__(
        self,
        delegate: SpanExporter,
        name: str,
        endpoint: str | None = None,
        *,
        report_every: float = EXPORT_FAILURE_REPORT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delegate = delegate
        self.name = name
        self.endpoint = endpoint
        self.report_every = report_every
        self.clock = clock
        self.failed_batches = 0  # since the last success
        self._failing_since: float | None = None
        self._reported_at = 0.0
        self._state = _Swallowed()
        swallow = _SwallowDuringExport(self._state)
        # Each exporter logs through its module's logger (a filter does not reach children).
        for logger_name in _exporter_loggers(delegate):
            logging.getLogger(logger_name).addFilter(swallow)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._state.active, self._state.first = True, None
        try:
            result = self.delegate.export(spans)
            reason = self._state.first or "the exporter reported a failure"
        except Exception as exc:  # the SDK would log it with a traceback, once per batch
            result = SpanExportResult.FAILURE
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._state.active = False
        if result is SpanExportResult.SUCCESS:
            self._succeeded()
        else:
            self._failed(reason, len(spans))
        return result

    def _failed(self, reason: str, spans: int) -> None:
        now = self.clock()
        self.failed_batches += 1
        fields = {"exporter": self.name, "endpoint": self.endpoint, "reason": reason[:300]}
        if self._failing_since is None:
            self._failing_since = self._reported_at = now
            _log.warning(
                "trace_export.failing",
                **fields,
                dropped_spans=spans,
                note="spans are dropped until the trace backend answers",
            )
        elif now - self._reported_at >= self.report_every:
            self._reported_at = now
            _log.warning(
                "trace_export.still_failing",
                **fields,
                failed_batches=self.failed_batches,
                failing_seconds=round(now - self._failing_since, 1),
            )

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            _log.info(
                "trace_export.recovered",
                exporter=self.name,
                endpoint=self.endpoint,
                failed_batches=self.failed_batches,
                failing_seconds=round(self.clock() - self._failing_since, 1),
            )
        self._failing_since = None
        self.failed_batches = 0

    def shutdown(self) -> None:
        self.delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.delegate.force_flush(timeout_millis)


def _exporter_loggers(delegate: SpanExporter) -> list[str]:
    """The loggers an exporter writes its failures to: its own module's and, for OTLP over
    HTTP, the shared client's default one."""
    module = type(delegate).__module__
    names = [module]
    if module.startswith("opentelemetry.exporter.otlp"):
        names.append("opentelemetry.exporter.otlp.common.http")
    return names


def _endpoint(name: str) -> str | None:
    """Where exporter ``name`` sends, from the standard variables (for the log lines only)."""
    if name == "zipkin":
        return os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "http://localhost:9411/api/v2/spans")
    if name == "otlp":
        return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"
        )
    return None


def _build_exporter(name: str) -> SpanExporter:
    """One exporter, reporting its failures as :class:`ReportingSpanExporter` does."""
    return ReportingSpanExporter(_build_bare_exporter(name), name, _endpoint(name))


def _build_bare_exporter(name: str) -> SpanExporter:
    """One exporter; each reads its own standard variables (endpoint, headers, timeout)."""
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "zipkin":
        # OTEL_EXPORTER_ZIPKIN_ENDPOINT, default http://localhost:9411/api/v2/spans.
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        return ZipkinExporter()
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


def configure_tracing(service: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Install a tracer provider once per process.

    The provider always exists, so trace ids reach the logs and the Kafka headers; spans
    leave the process only through the exporters ``OTEL_TRACES_EXPORTER`` selects (see
    :func:`selected_exporters`: unset means OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is
    set, nothing otherwise) or, instead of them, an explicit ``exporter`` (tests), each behind a
    ``BatchSpanProcessor`` (``OTEL_BSP_SCHEDULE_DELAY``, default 5000 ms). Spans are
    recorded only when something exports them (``ExportAwareSampler``, unless
    ``OTEL_TRACES_SAMPLER`` chooses another sampler). ``OTEL_SDK_DISABLED=true`` turns
    everything off.

    Raises :class:`TracingConfigError` when ``OTEL_TRACES_EXPORTER`` names an unknown
    exporter, before anything is installed.
    """
    global _configured
    current = trace.get_tracer_provider()
    if _configured and isinstance(current, TracerProvider):
        if exporter is not None:
            current.add_span_processor(BatchSpanProcessor(exporter))
            _now_exporting(current)
        return current
    exporters = (
        [exporter]
        if exporter is not None
        else [_build_exporter(name) for name in selected_exporters()]
    )
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service)}),
        sampler=_sampler(),
    )
    for each in exporters:
        provider.add_span_processor(BatchSpanProcessor(each))
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
