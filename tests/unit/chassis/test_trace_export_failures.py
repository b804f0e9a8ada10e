"""A trace backend that stops is one warning, not an error with a traceback per batch (chassis.tracing.ReportingSpanExporter)."""

from __future__ import annotations

import logging
import socket
from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from structlog.testing import capture_logs

from chassis import tracing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend(SpanExporter):
    """A fake exporter whose backend is up or refuses connections, as the SDK's exporters see it."""

    def __init__(self) -> None:
        self.up = False
        self.batches = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches += 1
        if not self.up:
            raise ConnectionError("[Errno 111] Connection refused")
        return SpanExportResult.SUCCESS


def refused_endpoint(path: str) -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def events(logs: Sequence[MutableMapping[str, Any]]) -> list[str]:
    return [str(e["event"]) for e in logs if str(e["event"]).startswith("trace_export.")]


def test_one_warning_when_failing_starts_one_a_minute_while_it_lasts_one_info_when_it_ends() -> (
    None
):
    clock, backend = Clock(), Backend()
    exporter = tracing.ReportingSpanExporter(
        backend, "zipkin", "http://x/api/v2/spans", clock=clock
    )
    with capture_logs() as logs:
        for _ in range(13):  # a batch every 5 s for a minute, all refused
            assert exporter.export([]) is SpanExportResult.FAILURE
            clock.now += 5
        assert events(logs) == ["trace_export.failing", "trace_export.still_failing"]
        assert logs[0]["log_level"] == "warning"
        assert logs[0]["reason"] == "ConnectionError: [Errno 111] Connection refused"
        assert logs[0]["endpoint"] == "http://x/api/v2/spans"
        assert "exc_info" not in logs[0]
        assert "exception" not in logs[0]
        assert logs[1]["failed_batches"] == 13
        assert logs[1]["failing_seconds"] == 60
        backend.up = True
        assert exporter.export([]) is SpanExportResult.SUCCESS
        assert exporter.export([]) is SpanExportResult.SUCCESS
    assert events(logs)[2:] == ["trace_export.recovered"]
    assert logs[2]["log_level"] == "info"
    assert logs[2]["failed_batches"] == 13
    # failing again later is a new episode: reported at once
    backend.up = False
    with capture_logs() as again:
        exporter.export([])
    assert events(again) == ["trace_export.failing"]


def test_a_failure_result_and_the_exporters_own_log_lines_are_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Zipkin answering 5xx: the exporter logs an error itself and returns FAILURE."""
    own = logging.getLogger(__name__)

    class Answers503(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            own.error("Traces cannot be uploaded; status code: 503")
            return SpanExportResult.FAILURE

    exporter = tracing.ReportingSpanExporter(Answers503(), "zipkin", clock=Clock())
    with capture_logs() as logs, caplog.at_level(logging.DEBUG):
        exporter.export([])
        exporter.export([])
    assert [r.getMessage() for r in caplog.records if r.name == __name__] == []
    assert events(logs) == ["trace_export.failing"]
    assert logs[0]["reason"] == "Traces cannot be uploaded; status code: 503"
    own.error("outside an export the exporter's logger is left alone")
    assert [r.name for r in caplog.records] == [__name__]


@pytest.mark.parametrize(
    "bare",
    [
        lambda: ZipkinExporter(endpoint=refused_endpoint("/api/v2/spans"), timeout=2),
        lambda: OTLPSpanExporter(endpoint=refused_endpoint("/v1/traces"), timeout=1),
    ],
    ids=["zipkin", "otlp"],
)
def test_the_sdk_exporters_to_a_refusing_endpoint_log_one_warning_and_no_traceback(
    bare: object, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = tracing.ReportingSpanExporter(bare(), "backend", clock=Clock())  # type: ignore[operator]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(__name__)
    with capture_logs() as logs, caplog.at_level(logging.DEBUG):
        for _ in range(3):
            with tracer.start_as_current_span("work"):
                pass
    provider.shutdown()
    assert events(logs) == ["trace_export.failing"]
    assert [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_the_batch_processor_never_sees_an_exception(caplog: pytest.LogCaptureFixture) -> None:
    """The SDK's ``Exception while exporting Span.`` (with a traceback) is what floods the logs."""
    exporter = tracing.ReportingSpanExporter(Backend(), "otlp", clock=Clock())
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=10)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            with provider.get_tracer(__name__).start_as_current_span("work"):
                pass
            assert processor.force_flush(5000)
        provider.shutdown()
    assert not [r for r in caplog.records if "Exception while exporting" in r.getMessage()]


def test_every_selected_exporter_reports_its_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "http://127.0.0.1:1/api/v2/spans")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:2")
    for name in ("zipkin", "otlp", "console"):
        built = tracing._build_exporter(name)
        assert isinstance(built, tracing.ReportingSpanExporter), name
    zipkin = tracing._build_exporter("zipkin")
    assert isinstance(zipkin, tracing.ReportingSpanExporter)
    assert zipkin.endpoint == "http://127.0.0.1:1/api/v2/spans"
    assert isinstance(zipkin.delegate, ZipkinExporter)
