"""`make run` supervisor: it stops the gateway, then the APIs, then the workers, and notices a dead child."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from types import ModuleType

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
