"""`make run` supervisor: it stops the gateway, then the APIs, then the workers, and notices a dead child."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.infra import REPO

#: A child that writes when it gets SIGTERM, then exits after a short, graceful pause.
GRACEFUL = """
import signal, sys, time
def stop(*_):
    print("stopping", flush=True)
    time.sleep(0.2)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"


def load_supervisor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_supervisor", REPO / "deploy/local/run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_supervisor"] = module
    spec.loader.exec_module(module)
    return module


def started(run: ModuleType, name: str, tier: int, script: str) -> object:
    process = run.start(run.ProcessSpec(name, [sys.executable, "-c", script], {}, tier))
    time.sleep(0.3)  # long enough for the child to install its SIGTERM handler
    return process


def test_processes_stop_tier_by_tier_and_a_stubborn_one_is_killed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = load_supervisor()
    worker = started(run, "w", run.WORKER, GRACEFUL)
    api = started(run, "a", run.API, GRACEFUL)
    gateway = started(run, "g", run.GATEWAY, STUBBORN)
    run.stop_all([worker, api, gateway], timeout=1.0)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "run.py" in line]
    order = [line.split("|", 1)[1].strip() for line in lines]
    assert order == [
        "stopping the gateway: SIGTERM to g",
        "g still running after 1s: SIGKILL",
        "g exited with code -9",
        "stopping the APIs: SIGTERM to a",
        "a exited with code 0",
        "stopping the workers: SIGTERM to w",
        "w exited with code 0",
    ]


def test_a_child_that_dies_on_its_own_stops_the_supervision_with_an_error() -> None:
    run = load_supervisor()
    crashing = started(run, "c", run.WORKER, "import sys, time\ntime.sleep(0.5)\nsys.exit(3)\n")
    healthy = started(run, "h", run.API, GRACEFUL)
    try:
        assert run.supervise([crashing, healthy], threading.Event()) == 1
    finally:
        run.stop_all([crashing, healthy], timeout=5)


def test_a_stop_request_ends_the_supervision_cleanly() -> None:
    run = load_supervisor()
    healthy = started(run, "h", run.API, GRACEFUL)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    try:
        assert run.supervise([healthy], stop) == 0
    finally:
        run.stop_all([healthy], timeout=5)


def test_with_the_restart_policy_a_killed_child_is_started_again_and_its_pid_file_follows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = load_supervisor()
    processes: list[Any] = [started(run, "k", run.WORKER, GRACEFUL)]
    for process in processes:
        run.write_pid_file(str(tmp_path), process)
    first_pid = int((tmp_path / "k.pid").read_text())
    stop = threading.Event()
    supervision = threading.Thread(
        target=run.supervise,
        args=(processes, stop),
        kwargs={"restart": True, "pid_dir": str(tmp_path)},
    )
    supervision.start()
    try:
        os.killpg(first_pid, signal.SIGKILL)  # a crash, as the fault suite causes one
        deadline = time.monotonic() + 10
        while int((tmp_path / "k.pid").read_text()) == first_pid:
            assert time.monotonic() < deadline, "not restarted"
            time.sleep(0.05)
        assert processes[0].popen.poll() is None
        assert processes[0].restarts == 1
    finally:
        stop.set()
        supervision.join()
        run.stop_all(processes, timeout=5)
    out = capsys.readouterr().out
    assert "k exited unexpectedly with code -9; restarting in 0.5s" in out
    assert "k restarted (restart 1)" in out


def test_urls_sourced_unchanged_from_local_env_still_follow_the_offset() -> None:
    """Kind: a second copy of the system silently wired to the first one.

    With ``set -a; source deploy/local/local.env`` (the documented way to get the settings into
    a shell), every URL of the file is in the environment. Counting those as explicit kept an
    offset copy's gateway and JWKS on the default ports: its requests went to the first copy's
    services, or to nothing (503)."""
    run = load_supervisor()
    defaults = run.read_env_file(run.ENV_FILE)
    environ = {**defaults, "QNA_URL": "http://qna.example:80", "RUN_PORT_OFFSET": "100"}
    explicit = run.explicit_settings(environ, defaults)
    assert explicit == {"QNA_URL", "RUN_PORT_OFFSET"}
    shared = {**defaults, **environ}
    run.apply_service_urls(shared, explicit)
    assert shared["MEMBER_URL"] == "http://127.0.0.1:8101,http://127.0.0.1:8111"  # 2 replicas
    assert shared["JWKS_URL"] == "http://127.0.0.1:8101/.well-known/jwks.json"
    assert shared["QNA_URL"] == "http://qna.example:80"
    assert shared["WEB_URL"] == "http://127.0.0.1:8105"
    assert shared["GATEWAY_URL"] == "http://127.0.0.1:8100"


def test_a_port_offset_moves_every_port_and_the_urls_that_were_not_set_explicitly() -> None:
    run = load_supervisor()
    shared = {"RUN_PORT_OFFSET": "10000", "QNA_URL": "http://qna.example:80", "X": "1"}
    shared.update({f"{s}_DATABASE_URL": "db" for s in ("MEMBER", "BOARD", "QNA", "SAGA")})
    run.apply_service_urls(shared, explicit={"QNA_URL"})
    assert shared["MEMBER_URL"] == "http://127.0.0.1:18001"
    assert shared["SAGA_URL"] == "http://127.0.0.1:18004"
    assert shared["QNA_URL"] == "http://qna.example:80"
    assert shared["JWKS_URL"] == "http://127.0.0.1:18001/.well-known/jwks.json"
    specs = {s.name: s for s in run.long_running_processes(shared, list(run.DEPLOYABLES))}
    assert specs["gateway"].env["HTTP_PORT"] == "18000"
    assert specs["board-api"].env["HTTP_PORT"] == "18002"
    assert specs["saga-worker"].env["WORKER_PORT"] == "19104"
    assert specs["web"].env["HTTP_PORT"] == "18005"


def test_every_url_of_our_processes_follows_the_offset() -> None:
    """Kind: a second copy of the system silently wired to the first one. Web calls the gateway
    (``GATEWAY_URL``) and the gateway sends pages to web (``WEB_URL``): an offset copy that moved
    only the services' URLs had its pages served by, and its forms posted through, the first
    copy."""
    run = load_supervisor()
    defaults = run.read_env_file(run.ENV_FILE)
    shared = {**defaults, "RUN_PORT_OFFSET": "10000", "RUN_API_REPLICAS": "1"}
    run.apply_service_urls(shared, run.explicit_settings(shared, defaults))
    offset_ports = {d.url_setting: d.http_port + 10000 for d in run.DEPLOYABLES}
    assert set(offset_ports) == {
        "MEMBER_URL",
        "BOARD_URL",
        "QNA_URL",
        "SAGA_URL",
        "GATEWAY_URL",
        "WEB_URL",
    }
    for key, port in offset_ports.items():
        assert shared[key] == f"http://127.0.0.1:{port}", key
    # and nothing in local.env still names one of our default ports
    ours = {str(d.http_port) for d in run.DEPLOYABLES} | {
        str(d.worker_port) for d in run.DEPLOYABLES if d.worker_port
    }
    for key, value in shared.items():
        assert not any(f"127.0.0.1:{port}" in value for port in ours), (key, value)
    specs = {s.name: s for s in run.long_running_processes(shared, list(run.DEPLOYABLES))}
    assert specs["web"].env["GATEWAY_URL"] == "http://127.0.0.1:18000"
    assert specs["gateway"].env["WEB_URL"] == "http://127.0.0.1:18005"


def test_web_runs_as_one_api_process_stopped_after_the_gateway() -> None:
    run = load_supervisor()
    shared = {f"{s}_DATABASE_URL": "db" for s in ("MEMBER", "BOARD", "QNA", "SAGA")}
    specs = {s.name: s for s in run.long_running_processes(shared, list(run.DEPLOYABLES))}
    web = specs["web"]
    # the environment's entry point itself, no `uv run` resolver pass and no uv process beside it
    assert web.command == [str(run.VENV_BIN / "web"), "api"]
    assert web.tier == run.API  # the gateway (tier GATEWAY) stops first
    assert web.env["HTTP_PORT"] == "8005"
    assert web.env["SERVICE_NAME"] == "web"
    assert "DATABASE_URL" not in web.env
    assert not any(name.startswith("web-") for name in specs)  # no worker, no migration
    admin = run.admin_processes(shared, list(run.DEPLOYABLES))
    assert "web-migrate" not in {spec.name for spec in admin}


def test_every_process_starts_from_its_entry_point_in_the_environment() -> None:
    run = load_supervisor()
    shared = {f"{s}_DATABASE_URL": "db" for s in ("MEMBER", "BOARD", "QNA", "SAGA")}
    present = list(run.DEPLOYABLES)
    specs = run.long_running_processes(shared, present) + run.admin_processes(shared, present)
    for spec in specs:
        program = Path(spec.command[0])
        assert program.parent == Path(sys.executable).parent, spec.command
        assert program.exists(), spec.command


def replica_specs(**settings: str) -> dict[str, Any]:
    run = load_supervisor()
    defaults = run.read_env_file(run.ENV_FILE)
    shared = {**defaults, **settings}
    explicit = run.explicit_settings(settings, defaults)
    run.apply_service_urls(shared, explicit)
    specs = run.long_running_processes(shared, list(run.DEPLOYABLES), frozenset(explicit))
    return {s.name: s for s in specs}


def test_each_api_runs_as_replicas_on_its_port_plus_ten_per_replica() -> None:
    """local.env's two replicas: ``board-api`` on 8002, ``board-api-2`` on 8012 (member 8011,
    qna 8013, saga 8014); the workers, the gateway and web stay single."""
    specs = replica_specs()
    ports = {name: spec.env.get("HTTP_PORT") for name, spec in specs.items()}
    assert ports == {
        "member-api": "8001",
        "member-api-2": "8011",
        "board-api": "8002",
        "board-api-2": "8012",
        "qna-api": "8003",
        "qna-api-2": "8013",
        "saga-api": "8004",
        "saga-api-2": "8014",
        "gateway": "8000",
        "web": "8005",
        "member-worker": None,
        "board-worker": None,
        "qna-worker": None,
        "saga-worker": None,
    }
    # one Deployment, two pods: the same configuration and SERVICE_NAME, another port
    first, second = specs["qna-api"], specs["qna-api-2"]
    assert first.command == second.command
    assert {k: v for k, v in first.env.items() if k != "HTTP_PORT"} == {
        k: v for k, v in second.env.items() if k != "HTTP_PORT"
    }
    assert second.env["SERVICE_NAME"] == "qna-api"
    assert second.tier == first.tier


def test_the_gateway_and_saga_get_every_replica_and_jwks_the_first() -> None:
    gateway = replica_specs(RUN_PORT_OFFSET="100")["gateway"].env
    assert gateway["BOARD_URL"] == "http://127.0.0.1:8102,http://127.0.0.1:8112"
    assert gateway["MEMBER_URL"] == "http://127.0.0.1:8101,http://127.0.0.1:8111"
    assert gateway["WEB_URL"] == "http://127.0.0.1:8105"
    assert gateway["JWKS_URL"] == "http://127.0.0.1:8101/.well-known/jwks.json"
    saga = replica_specs()["saga-api"].env
    assert saga["QNA_URL"] == "http://127.0.0.1:8003,http://127.0.0.1:8013"
    assert saga["GATEWAY_URL"] == "http://127.0.0.1:8000"


def test_an_explicit_service_url_is_kept_and_its_service_runs_one_replica() -> None:
    """The fault suite names its services one URL each: it keeps its one-replica shape."""
    specs = replica_specs(QNA_URL="http://127.0.0.1:18003")
    gateway = specs["gateway"].env
    assert gateway["QNA_URL"] == "http://127.0.0.1:18003"
    assert gateway["BOARD_URL"] == "http://127.0.0.1:8002,http://127.0.0.1:8012"
    assert "qna-api" in specs
    assert "qna-api-2" not in specs  # nothing would send it a request
    assert "board-api-2" in specs


def test_one_replica_is_the_old_shape() -> None:
    specs = replica_specs(RUN_API_REPLICAS="1")
    assert "board-api-2" not in specs
    assert specs["gateway"].env["BOARD_URL"] == "http://127.0.0.1:8002"


@pytest.mark.parametrize("value", ["0", "11", "two"])
def test_a_replica_count_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="RUN_API_REPLICAS must be 1 to 10"):
        replica_specs(RUN_API_REPLICAS=value)


def test_make_run_defaults_replicas_restarts_pid_files_and_a_drain_the_gateway_sees() -> None:
    """The interface the walkthroughs and the fault tooling code against."""
    from gateway.config import Settings as GatewaySettings

    run = load_supervisor()
    defaults = run.read_env_file(run.ENV_FILE)
    assert defaults["RUN_API_REPLICAS"] == "2"
    assert defaults["RUN_RESTART"] in ("on-failure", "always")
    assert run.resolve_pid_dir(defaults["RUN_PID_DIR"]) == str(REPO / ".local" / "run")
    interval = GatewaySettings.model_fields["UPSTREAM_HEALTH_CHECK_INTERVAL_SECONDS"].default
    # a replica turns unready at SIGTERM and must leave the rotation before it stops accepting
    assert float(defaults["SHUTDOWN_DRAIN_SECONDS"]) >= 2 * interval


def test_a_child_sigtermed_from_outside_comes_back_as_a_rolled_pod_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kind: a rolling restart ends the run. A SIGTERM from outside ends the child gracefully
    (code 0), which is still an exit the supervisor did not cause: restartPolicy Always."""
    run = load_supervisor()
    processes: list[Any] = [started(run, "board-api-2", run.API, GRACEFUL)]
    run.write_pid_file(str(tmp_path), processes[0])
    first_pid = int((tmp_path / "board-api-2.pid").read_text())
    stop = threading.Event()
    supervision = threading.Thread(
        target=run.supervise,
        args=(processes, stop),
        kwargs={"restart": True, "pid_dir": str(tmp_path)},
    )
    supervision.start()
    try:
        os.killpg(first_pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while int((tmp_path / "board-api-2.pid").read_text()) == first_pid:
            assert time.monotonic() < deadline, "not restarted"
            time.sleep(0.05)
        assert processes[0].popen.poll() is None
    finally:
        stop.set()
        supervision.join()
        run.stop_all(processes, timeout=5)
    run.remove_pid_files(str(tmp_path), processes)
    assert not list(tmp_path.glob("*.pid"))
    out = capsys.readouterr().out
    assert (
        "board-api-2 exited with code 0 (stopped from outside, not by run.py); restarting in 0.5s"
        in out
    )
    assert "board-api-2 restarted (restart 1)" in out


def test_without_a_restart_policy_a_graceful_exit_from_outside_stops_everything() -> None:
    run = load_supervisor()
    child = started(run, "a", run.API, GRACEFUL)
    try:
        os.killpg(child.popen.pid, signal.SIGTERM)  # type: ignore[attr-defined]
        assert run.supervise([child], threading.Event()) == 1
    finally:
        run.stop_all([child], timeout=5)


def test_a_relative_pid_dir_is_under_the_repository() -> None:
    run = load_supervisor()
    assert run.resolve_pid_dir(".local/run") == str(REPO / ".local/run")
    assert run.resolve_pid_dir("/tmp/x") == "/tmp/x"
    assert run.resolve_pid_dir("") is None


def test_all_ready_is_said_only_once_every_process_answers_its_readiness_probe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`make demo` and the walkthroughs tell a developer to wait for `all ready`: it must not
    come while one process still refuses its probe, and it must come once all answer 200."""
    import http.server
    import socket

    run = load_supervisor()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        late_port = probe.getsockname()[1]

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return None

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    specs = [
        run.ProcessSpec(
            "gateway", [], {"HTTP_PORT": str(servers[0].server_address[1])}, run.GATEWAY
        ),
        run.ProcessSpec("board-worker", [], {"WORKER_PORT": str(late_port)}, run.WORKER),
    ]
    stop = threading.Event()
    announcer = threading.Thread(target=run.announce_ready, args=(specs, stop, "http://gw"))
    announcer.start()
    try:
        time.sleep(1.5)
        assert "all ready" not in capsys.readouterr().out  # board-worker refuses its probe
        servers.append(http.server.ThreadingHTTPServer(("127.0.0.1", late_port), Ready))
        threading.Thread(target=servers[-1].serve_forever, daemon=True).start()
        announcer.join(timeout=5)
        assert not announcer.is_alive()
        assert "; the gateway on http://gw; press Ctrl-C to stop" in capsys.readouterr().out
    finally:
        stop.set()
        for server in servers:
            server.shutdown()
            server.server_close()
