"""The demo tour's narration: what ``--quiet`` keeps, where the metrics of a `make run` copy are, how a problem reads."""

from __future__ import annotations

import io

import httpx

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
