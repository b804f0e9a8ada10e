"""The demo tour's narration: what ``--quiet`` keeps, where the metrics of a `make run` copy are, how a problem reads."""

from __future__ import annotations

import io
from pathlib import Path

import httpx

from tools.demo.__main__ import observing_zipkin
from tools.demo.tour import Narrator, Tour, describe


def test_quiet_keeps_only_the_summary() -> None:
    out = io.StringIO()
    narrator = Narrator(out, quiet=True)

    narrator.step("Sign up", "why")
    narrator.call("POST", "/api/members", 201, 12.3)
    narrator.look("page", "http://127.0.0.1:8000/")
    narrator.summary("done")

    assert out.getvalue() == "done\n"
    assert narrator.number == 1  # the step count still names a failing step


def test_the_saga_workers_metrics_follow_the_gateways_port_offset() -> None:
    def metrics(gateway: str) -> str:
        with httpx.Client(base_url=gateway) as http:
            tour = Tour(http, Narrator(io.StringIO()), admin_email="", admin_password="")
            return tour.saga_worker_metrics()

    assert metrics("http://127.0.0.1:8000") == "http://127.0.0.1:9104/metrics"
    # RUN_PORT_OFFSET=10000 (deploy/local/run.py): gateway 18000, workers 19101-19104
    assert metrics("http://localhost:18000/") == "http://localhost:19104/metrics"


def test_a_problem_document_reads_as_its_title_and_detail() -> None:
    problem = httpx.Response(
        409, json={"title": "Conflict", "detail": "the question is not OPEN", "status": 409}
    )

    assert describe(problem) == "Conflict - the question is not OPEN"
    assert describe(httpx.Response(502, text="")) == "(empty body)"


def test_while_observing_a_saga_request_starts_a_trace_whose_zipkin_page_is_printed() -> None:
    sent: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202, json={"saga_id": "s1"})

    out = io.StringIO()
    transport = httpx.MockTransport(gateway)
    with httpx.Client(base_url="http://gw", transport=transport) as http:
        observed = Tour(http, Narrator(out), admin_email="", admin_password="", zipkin="http://z/")
        trace_id = observed.new_trace()
        assert trace_id is not None
        observed.call("POST", "/api/x", expect=202, trace_id=trace_id)
        observed.look_at_trace(trace_id)
        plain = Tour(http, Narrator(out), admin_email="", admin_password="")
        assert plain.new_trace() is None
        plain.call("POST", "/api/x", expect=202, trace_id=plain.new_trace())
        plain.look_at_trace(None)
    version, traced, parent, flags = sent[0].headers["traceparent"].split("-")
    assert (version, traced, len(parent), flags) == ("00", trace_id, 16, "01")  # sampled
    assert "traceparent" not in sent[1].headers
    assert out.getvalue().count("look · trace") == 1
    assert f"http://z/zipkin/traces/{trace_id} (Zipkin)" in out.getvalue()


def test_the_zipkin_link_follows_the_observe_switch(tmp_path: Path) -> None:
    env = {"RUN_PID_DIR": str(tmp_path)}
    assert observing_zipkin(env) is None
    (tmp_path / "observe.env").write_text(
        "OTEL_TRACES_EXPORTER=zipkin\n"
        "OTEL_EXPORTER_ZIPKIN_ENDPOINT=http://127.0.0.1:19411/api/v2/spans\n"
    )
    assert observing_zipkin(env) == "http://127.0.0.1:19411"
