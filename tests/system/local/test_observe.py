"""`make observe` for real: run.py at a port offset with observing on, scraped by a Prometheus of its own that reports every process `up`.

The system runs as ``make run`` runs it (``deploy/local/run.py``, two replicas per API), on ports,
databases, topics and a pid folder of its own (``RUN_PORT_OFFSET=20700``). Its Prometheus is
started by ``deploy/local/infra.sh prometheus-up`` on a free port with its data in a scratch
folder (``MSA_LOCAL_DIR``), from the configuration ``run.py prometheus-config`` generates for that
offset. The observe switch is on (``run.py observe on``): with a Zipkin (``infra.sh zipkin-up``,
where it and Java exist) every process exports to it; without one the supervisor must say that it
starts them without exporting (a stale switch is harmless). Then, within a bounded wait,
``/api/v1/targets`` must list every API replica, worker, the gateway and web, each ``up``, with
the job and labels compose's Prometheus gives them. With Zipkin, an answer acceptance driven
through that system's gateway (tools/demo's tour steps) must be one trace holding the spans of
the services as ``make run`` names them (gateway, qna-api, saga-api, saga-worker, qna-worker,
member-worker).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import IO, Any

import httpx
import pytest

from tests.support.infra import REPO, Infra
from tests.support.kafka import delete_topics_with_prefix
from tests.support.processes import free_port
from tests.system.local.supervisor import (
    System,
    observe_switch,
    start_supervisor,
    stop_supervisor,
    supervisor_env,
    wait_ready,
)
from tests.system.tracing.zipkin import Span, Zipkin, wait_for_trace
from tools.demo.tour import Narrator, Result, Tour

pytestmark = [
    pytest.mark.system,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="prometheus is not installed (Debian package prometheus: `make observe-tools`)",
    ),
]

#: Beside make run (8000-8014), the fault suite (18000-) and the rolling-restart test (20600-).
PORT_OFFSET = 20700
REPLICAS = 2
SERVICES = ("member", "board", "qna", "saga")
#: Fault flags and rate-limit counters are global Redis keys: a database no other system test uses.
REDIS_DB = 11
INFRA_SH = REPO / "deploy" / "local" / "infra.sh"
#: Every API replica, every worker, the gateway and web.
EXPECTED_TARGETS = {
    *(
        ("api", f"127.0.0.1:{8001 + i + PORT_OFFSET + 10 * k}", service)
        for i, service in enumerate(SERVICES)
        for k in range(REPLICAS)
    ),
    *(
        ("worker", f"127.0.0.1:{9101 + i + PORT_OFFSET}", service)
        for i, service in enumerate(SERVICES)
    ),
    ("api", f"127.0.0.1:{8000 + PORT_OFFSET}", "gateway"),
    ("api", f"127.0.0.1:{8005 + PORT_OFFSET}", "web"),
}
#: Prometheus scrapes every 5 s; a process answers /metrics once it serves.
TARGETS_UP_WITHIN_SECONDS = 60


def infra_sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INFRA_SH), command],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def zipkin_available() -> bool:
    """`infra.sh zipkin-up` exists and Java runs Zipkin's jar."""
    return "zipkin-up" in INFRA_SH.read_text(encoding="utf-8") and shutil.which("java") is not None


async def targets(prometheus: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{prometheus}/api/v1/targets", timeout=5)
    response.raise_for_status()
    active: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
    return active


@pytest.fixture(scope="module")
async def observed(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[System, str, bool, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("observe")
    prefix = f"o{uuid.uuid4().hex[:10]}."
    databases = {s: await infra.create_database(s) for s in SERVICES}
    env = supervisor_env(
        infra,
        databases,
        prefix,
        redis_db=REDIS_DB,
        port_offset=PORT_OFFSET,
        replicas=REPLICAS,
        pid_dir=workdir / "pids",
        key_id=f"observe-{prefix}",
        extra={
            "MSA_LOCAL_DIR": str(workdir / "local"),
            "PROMETHEUS_PORT": str(free_port()),
            "ZIPKIN_PORT": str(free_port()),
        },
    )
    with_zipkin = zipkin_available()
    backends = ["prometheus-up", *(["zipkin-up"] if with_zipkin else [])]
    log_path = workdir / "run.log"
    log: IO[bytes] = log_path.open("wb")
    system: System | None = None
    try:
        for command in backends:
            result = await asyncio.to_thread(infra_sh, command, env)
            assert result.returncode == 0, result.stdout + result.stderr
        switch = await observe_switch(env, "on", timeout=60)
        assert switch.returncode == 0, switch.stdout + switch.stderr
        system = System(start_supervisor(env, log), workdir / "pids", log_path)
        ports = [int(target.split(":")[1]) for _, target, _ in EXPECTED_TARGETS]
        await wait_ready(system, ports, timeout=300)
        yield system, f"http://127.0.0.1:{env['PROMETHEUS_PORT']}", with_zipkin, env
    finally:
        if system is not None:
            stop_supervisor(system)
        log.close()
        for command in ("prometheus-down", *(["zipkin-down"] if with_zipkin else [])):
            await asyncio.to_thread(infra_sh, command, env)
        for url in databases.values():
            await infra.drop_database(url)
        await delete_topics_with_prefix(infra.kafka_bootstrap, prefix)


async def test_prometheus_reports_every_process_of_make_run_up(
    observed: tuple[System, str, bool, dict[str, str]],
) -> None:
    system, prometheus, with_zipkin, _ = observed
    deadline = time.monotonic() + TARGETS_UP_WITHIN_SECONDS
    while True:
        active = await targets(prometheus)
        seen = {
            (t["labels"]["job"], t["labels"]["instance"], t["labels"]["deployable"]) for t in active
        }
        down = [t["labels"]["instance"] for t in active if t["health"] != "up"]
        if seen == EXPECTED_TARGETS and not down:
            break
        assert time.monotonic() < deadline, (
            f"after {TARGETS_UP_WITHIN_SECONDS}s: missing {EXPECTED_TARGETS - seen}, "
            f"extra {seen - EXPECTED_TARGETS}, not up {down}\n{system.log_tail()}"
        )
        await asyncio.sleep(1)
    for target in active:
        assert target["labels"]["process"] == target["labels"]["job"]
    log = system.log_tail(lines=100_000)
    if with_zipkin:
        assert "observing: processes (re)started now export every trace" in log
        assert "traces in Zipkin: http://127.0.0.1:" in log  # make run prints the UIs
    else:
        assert "Zipkin does not answer there: starting without exporting" in log


async def test_the_alert_rules_are_loaded_and_none_fires_on_a_healthy_system(
    observed: tuple[System, str, bool, dict[str, str]],
) -> None:
    _, prometheus, _, _ = observed
    async with httpx.AsyncClient() as http:
        rules = (await http.get(f"{prometheus}/api/v1/rules", timeout=5)).json()["data"]
        alerts = (await http.get(f"{prometheus}/api/v1/alerts", timeout=5)).json()["data"]
    names = {rule["name"] for group in rules["groups"] for rule in group["rules"]}
    assert {"SagaFailed", "ProcessDown", "ProcessNotReady", "DeadLettersReceived"} <= names
    assert [a for a in alerts["alerts"] if a["state"] == "firing"] == []


class TracedTour(Tour):
    """The demo's tour steps, keeping the trace id each saga's first request starts."""

    def __init__(self, http: httpx.Client, zipkin: str) -> None:
        super().__init__(
            http, Narrator(io.StringIO()), admin_email="", admin_password="", zipkin=zipkin
        )
        self.traces: list[str] = []

    def new_trace(self) -> str | None:
        trace_id = super().new_trace()
        if trace_id:
            self.traces.append(trace_id)
        return trace_id


def accept_an_answer(gateway: str, zipkin: str) -> str:
    """Two members, a question with a bounty, an answer, its acceptance (the saga, COMPLETED):
    the acceptance's trace id."""
    with httpx.Client(base_url=gateway, timeout=30) as http:
        tour = TracedTour(http, zipkin)
        asker = tour.log_in(tour.sign_up("하늘", "haneul"))
        answerer = tour.log_in(tour.sign_up("바다", "bada"))
        result = Result(tour.run_id, asker, answerer, asker)
        tour.ask_and_answer(result)
        tour.accept(result)
    return tour.traces[-1]


#: (service as make run names it, span kind, span name): each must be in the acceptance's trace.
ACCEPTANCE_SPANS = {
    ("gateway", "SERVER", "post /api/questions/{qid}/answers/{aid}/accept"),
    ("saga-api", "SERVER", "post /api/questions/{question_id}/answers/{answer_id}/accept"),
    (
        "qna-api",
        "SERVER",
        "get /internal/questions/{question_id}/answers/{answer_id}/acceptance-check",
    ),
    ("saga-worker", "PRODUCER", "saga.qna.commands publish"),
    ("qna-worker", "CONSUMER", "saga.qna.commands process"),
    ("saga-worker", "CONSUMER", "saga.replies process"),
    ("member-worker", "CONSUMER", "saga.member.commands process"),
    ("member-worker", "PRODUCER", "saga.replies publish"),
}


def seen(spans: list[Span], topic_prefix: str) -> set[tuple[str, str, str]]:
    """(service, kind, name) of each span, the topic names without the test's prefix."""
    return {
        (
            str(span.get("localEndpoint", {}).get("serviceName")),
            str(span.get("kind")),
            str(span.get("name", "")).removeprefix(topic_prefix),
        )
        for span in spans
    }


async def test_a_saga_through_make_runs_gateway_is_one_trace_under_make_runs_service_names(
    observed: tuple[System, str, bool, dict[str, str]],
) -> None:
    system, _, with_zipkin, env = observed
    if not with_zipkin:
        pytest.skip("Zipkin needs Java 17 or newer: the trace half of make observe is not here")
    zipkin = Zipkin(f"http://127.0.0.1:{env['ZIPKIN_PORT']}")
    gateway = f"http://127.0.0.1:{8000 + PORT_OFFSET}"
    prefix = env["KAFKA_TOPIC_PREFIX"].lower()  # Zipkin stores span names in lower case
    trace_id = await asyncio.to_thread(accept_an_answer, gateway, zipkin.url)
    async with httpx.AsyncClient(timeout=10) as http:
        spans = await wait_for_trace(
            http, zipkin, trace_id, lambda got: seen(got, prefix) >= ACCEPTANCE_SPANS, timeout=60
        )
    missing = ACCEPTANCE_SPANS - seen(spans, prefix)
    assert not missing, (
        f"trace {trace_id}: missing {sorted(missing)}; it holds {sorted(seen(spans, prefix))}\n"
        f"{system.log_tail()}"
    )


async def test_observe_off_rolls_every_process_of_the_running_supervisor_once(
    observed: tuple[System, str, bool, dict[str, str]],
) -> None:
    """What `make observe-down` does to a running `make run`: each process restarted in turn
    (SIGTERM, exit 0, started again by run.py without the observe settings), none left down."""
    system, _, _, env = observed
    names = sorted(p.stem for p in system.pid_dir.glob("*.pid"))
    assert len(names) == len(EXPECTED_TARGETS)
    before = {name: system.pid(name) for name in names}
    exits_before = system.log_tail(lines=100_000).count("exited with code 0 (stopped from outside")
    off = await observe_switch(env, "off", timeout=400)
    assert off.returncode == 0, off.stdout + off.stderr + system.log_tail()
    assert not (system.pid_dir / "observe.env").exists()
    assert all(system.pid(name) != before[name] for name in names)
    log = system.log_tail(lines=100_000)
    assert log.count("exited with code 0 (stopped from outside") - exits_before == len(names)
    assert "restarted and ready in" in off.stdout
    async with httpx.AsyncClient() as http:
        for _, target, _ in EXPECTED_TARGETS:
            assert (await http.get(f"http://{target}/readyz", timeout=5)).status_code == 200
