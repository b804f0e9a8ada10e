"""Graceful shutdown and JSON logs, observed on a real process."""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx
import pytest

from tests.support.processes import ServiceProcess, free_port

pytestmark = pytest.mark.integration


def _start(drain: float = 1.5, **env: str) -> ServiceProcess:
    port = free_port()
    proc = ServiceProcess(
        "slow-app",
        [sys.executable, "-m", "tests.integration.chassis.slow_app"],
        {
            "SERVICE_NAME": "slow-app",
            "HTTP_PORT": str(port),
            "SLOW_SECONDS": "2.5",
            "SHUTDOWN_DRAIN_SECONDS": str(drain),
            "SHUTDOWN_TIMEOUT_SECONDS": "10",
            **env,
        },
        port=port,
    ).start()
    proc.wait_ready()
    return proc


def test_sigterm_turns_readiness_503_drains_the_request_and_exits_zero() -> None:
    proc = _start()
    base = f"http://127.0.0.1:{proc.port}"
    result: dict[str, object] = {}

    def slow_request() -> None:
        response = httpx.get(f"{base}/slow", timeout=15)
        result["status"] = response.status_code
        result["body"] = response.json()

    worker = threading.Thread(target=slow_request)
    worker.start()
    deadline = time.monotonic() + 10
    while "slow.started" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.proc is not None
    proc.proc.send_signal(15)
    # within the 1.5 s drain the process still answers, and says it is not ready
    deadline = time.monotonic() + 1.2
    ready = httpx.get(f"{base}/readyz", timeout=5)
    while ready.status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
        ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"process": "shutting down"}

    worker.join(20)
    assert result == {"status": 200, "body": {"status": "done"}}
    assert proc.proc.wait(30) == 0

    lines = [json.loads(line) for line in proc.output().splitlines() if line.strip()]
    steps = [ln["step"] for ln in lines if ln.get("event") == "shutdown.step"]
    assert steps == [1, 2, 2, 3, 4, 5, 6]
    stopped = [
        ln.get("name") for ln in lines if ln.get("event") in ("shutdown.stopped", "shutdown.closed")
    ]
    assert stopped == ["ticking consumer", "scratch pool"]
    # the in-flight request finished before the loops were stopped
    events = [ln["event"] for ln in lines]
    assert events.index("http.request") < events.index("shutdown.stopped")


def test_every_log_line_is_json_and_request_lines_carry_trace_and_request_ids() -> None:
    proc = _start(drain=0)
    try:
        response = httpx.get(
            f"http://127.0.0.1:{proc.port}/slow?x=1",
            headers={
                "X-Request-ID": "req-123",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            },
            timeout=15,
        )
        assert response.headers["x-request-id"] == "req-123"
    finally:
        assert proc.terminate() == 0
    lines = [json.loads(line) for line in proc.output().splitlines() if line.strip()]
    assert all(ln["service"] == "slow-app" for ln in lines)
    inside = [ln for ln in lines if ln["event"] in ("slow.started", "http.request")]
    assert len(inside) == 2
    for ln in inside:
        assert ln["request_id"] == "req-123"
        assert ln["trace_id"] == "0af7651916cd43dd8448eb211c80319c"  # continued from traceparent
        assert len(ln["span_id"]) == 16


@pytest.mark.parametrize(
    ("trusted", "client"),
    [("127.0.0.1", "198.51.100.9"), ("10.0.0.0/8", "127.0.0.1"), ("", "127.0.0.1")],
)
def test_the_client_address_comes_from_trusted_hops_only(trusted: str, client: str) -> None:
    """Kind: one client's requests degrade another's (a client naming its own address).

    ``X-Forwarded-For`` sets ``request.client`` (and the access log's ``client``) only when
    the peer, loopback here, is in ``FORWARDED_ALLOW_IPS``; uvicorn's own default (loopback)
    never applies."""
    proc = _start(drain=0, FORWARDED_ALLOW_IPS=trusted)
    try:
        httpx.get(
            f"http://127.0.0.1:{proc.port}/slow",
            headers={"X-Forwarded-For": "198.51.100.9"},
            timeout=15,
        )
    finally:
        assert proc.terminate() == 0
    lines = [json.loads(line) for line in proc.output().splitlines() if line.strip()]
    [access] = [ln for ln in lines if ln["event"] == "http.request"]
    assert access["client"] == client
