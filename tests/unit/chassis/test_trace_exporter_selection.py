"""Exporter selection: OTEL_TRACES_EXPORTER (OpenTelemetry SDK environment variables) chooses where spans go."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from chassis import tracing

_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the caller's, a provider that is built but never installed, and no
    library instrumentation (both are process-wide)."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setattr(tracing, "_configured", False)
    monkeypatch.setattr(tracing, "_instrument_libraries", lambda: None)


def exporters_of(provider: TracerProvider) -> list[SpanExporter]:
    processors = provider._active_span_processor._span_processors
    exporters = [p.span_exporter for p in processors]  # type: ignore[attr-defined]
    return [getattr(e, "delegate", e) for e in exporters]


def exporting(provider: TracerProvider) -> bool:
    sampler = provider.sampler
    assert isinstance(sampler, tracing.ExportAwareSampler)
    return sampler.exporting


def test_unset_without_an_otlp_endpoint_exports_nothing_and_records_nothing() -> None:
    provider = tracing.configure_tracing("svc")

    assert exporters_of(provider) == []
    assert not exporting(provider)


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_unset_with_an_otlp_endpoint_exports_over_otlp(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:4318")

    provider = tracing.configure_tracing("svc")

    assert [type(e) for e in exporters_of(provider)] == [OTLPSpanExporter]
    assert exporting(provider)


def test_otlp_is_selected_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")

    provider = tracing.configure_tracing("svc")

    assert [type(e) for e in exporters_of(provider)] == [OTLPSpanExporter]
    assert exporting(provider)


def test_zipkin_sends_to_the_standard_endpoint_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    monkeypatch.setenv("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "http://127.0.0.1:19411/api/v2/spans")

    provider = tracing.configure_tracing("svc")

    [exporter] = exporters_of(provider)
    assert isinstance(exporter, ZipkinExporter)
    assert exporter.endpoint == "http://127.0.0.1:19411/api/v2/spans"
    assert exporting(provider)


def test_zipkin_defaults_to_localhost_9411(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")

    [exporter] = exporters_of(tracing.configure_tracing("svc"))

    assert isinstance(exporter, ZipkinExporter)
    assert exporter.endpoint == "http://localhost:9411/api/v2/spans"


def test_console_writes_spans_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")

    provider = tracing.configure_tracing("svc")

    assert [type(e) for e in exporters_of(provider)] == [ConsoleSpanExporter]


def test_a_list_selects_each_once_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", " Zipkin , otlp,zipkin ")

    provider = tracing.configure_tracing("svc")

    assert [type(e) for e in exporters_of(provider)] == [ZipkinExporter, OTLPSpanExporter]


def test_none_exports_nothing_even_with_an_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")

    provider = tracing.configure_tracing("svc")

    assert exporters_of(provider) == []
    assert not exporting(provider)


@pytest.mark.parametrize("value", ["jaeger", "zipkin,jeager", "otlp,", "none,zipkin"])
def test_a_wrong_value_stops_the_start_naming_the_variable_and_the_choices(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)

    with pytest.raises(tracing.TracingConfigError) as raised:
        tracing.configure_tracing("svc")

    message = str(raised.value)
    assert "OTEL_TRACES_EXPORTER" in message
    assert "otlp, zipkin, console, none" in message
    assert not tracing._configured  # nothing was installed
