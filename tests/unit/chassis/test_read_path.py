"""Per-request cost of the read path: no threadpool hop per dependency, spans recorded only when exported."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from chassis import tracing
from chassis.logging import _add_trace_context
from tests.unit.api.test_request_bounds import APPS


def _routes(routes: Any) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # an included router
        if included is not None:
            yield from _routes(included.routes)


def _sync_callables(app: FastAPI) -> set[str]:
    """Endpoints and dependencies FastAPI would run in its threadpool (a thread hop per call)."""
    found: set[str] = set()

    def walk(dependant: Any) -> None:
        for dep in dependant.dependencies:
            call = dep.call
            target = call if inspect.isroutine(call) else getattr(call, "__call__", call)  # noqa: B004
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                found.add(
                    f"{getattr(call, '__module__', '?')}.{getattr(call, '__qualname__', call)}"
                )
            walk(dep)

    for route in _routes(app.router.routes):
        if not inspect.iscoroutinefunction(route.endpoint):
            found.add(f"endpoint {route.path}")
        walk(route.dependant)
    return found


@pytest.mark.parametrize("name", sorted(APPS))
def test_no_route_runs_anything_in_the_threadpool(name: str) -> None:
    """A plain ``def`` dependency costs a thread hop on every request: none of ours blocks, so
    every one is ``async def``."""
    app = APPS[name]()
    assert list(_routes(app.router.routes)), "the walk found no route"
    assert _sync_callables(app) == set()


def _provider(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> TracerProvider:
    for key in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return TracerProvider(sampler=tracing._sampler())


def test_without_an_exporter_spans_are_not_recorded_but_their_ids_reach_logs_and_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = _provider(monkeypatch, {})
    with provider.get_tracer("t").start_as_current_span("GET /api/boards") as span:
        context = span.get_span_context()
        assert not span.is_recording()
        assert context.is_valid
        line = _add_trace_context(None, "info", {"event": "http.request"})
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    _version, trace_id, span_id, flags = carrier["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert int(flags, 16) & 0x01 == 0  # continued downstream, marked unsampled


def test_a_sampled_parent_is_still_recorded_without_an_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = _provider(monkeypatch, {})
    parent = propagate.extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    )
    span = provider.get_tracer("t").start_span("GET /api/boards", context=parent)
    assert span.is_recording()
    assert span.get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    span.end()


def test_with_an_exporter_every_new_trace_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = _provider(monkeypatch, {})
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing._now_exporting(provider)  # what configure_tracing does when it adds an exporter
    with provider.get_tracer("t").start_as_current_span("GET /api/boards") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /api/boards"]


def test_the_environment_chooses_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = _provider(
        monkeypatch,
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
    )
    assert isinstance(provider.sampler, TraceIdRatioBased)
    assert provider.sampler.rate == 0.25
    tracing._now_exporting(provider)  # an exporter does not override the operator's choice
    assert isinstance(provider.sampler, TraceIdRatioBased)


def test_the_default_sampler_is_export_aware(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(_provider(monkeypatch, {}).sampler, tracing.ExportAwareSampler)
