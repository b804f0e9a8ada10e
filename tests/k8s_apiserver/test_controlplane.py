"""The control-plane harness itself: one run directory per control plane, and a stop that always happens.

What a platform engineer relies on when the tests run beside a control plane of their own
(``python -m tests.k8s_apiserver.controlplane``) and when CI or ``docker stop`` ends a run:

- a second control plane from the same checkout leaves the first running, and only run
  directories whose owner process is gone are cleaned up, with what they left running;
- Ctrl-C (also twice, as ``uv run`` delivers it), SIGTERM and SIGHUP stop etcd, the API server
  and the controller manager, quietly (one line, no traceback); SIGKILL of the harness takes
  them down too (PR_SET_PDEATHSIG);
- the stop goes controller manager, API server, etcd, each exiting on SIGTERM in seconds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.k8s_apiserver import controlplane
from tests.k8s_apiserver.controlplane import ROOT, ControlPlane
from tests.support.signals import sigint_as_at_a_terminal

pytestmark = [pytest.mark.k8s_apiserver, pytest.mark.timeout(600)]

PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager")
# Seconds for the whole control plane to be gone after a stop signal: each process exits on
# SIGTERM in about a second when stopped in order (the old unordered stop needed a 15 s SIGKILL).
STOP_WITHIN = 10.0


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: it has exited, only its reaping is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _children_of(run_dir: Path) -> dict[str, int]:
    """The harness's processes by name, from its ``pids`` file (in start order)."""
    pids = [int(line.split()[0]) for line in (run_dir / "pids").read_text().splitlines()]
    return dict(zip(PROCESSES, pids, strict=True))


def _wait_gone(pids: dict[str, int], within: float) -> dict[str, int]:
    """Waits up to ``within`` seconds; returns the processes still running then."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = {name: pid for name, pid in pids.items() if _running(pid)}
        if not left:
            return left
        time.sleep(0.2)
    return {name: pid for name, pid in pids.items() if _running(pid)}


@dataclass
class Harness:
    """``python -m tests.k8s_apiserver.controlplane`` in a subprocess, once it is ready."""

    process: subprocess.Popen[str]
    kubeconfig: Path
    run_dir: Path  # where the kubeconfig is, with the data, logs and pids


@pytest.fixture
def harness() -> Iterator[Harness]:
    """A control plane someone looks around in, started while the session's ``plane`` runs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.k8s_apiserver.controlplane"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as at a terminal, even where this run inherited it ignored (a background job
        # of a shell script), which a Python child would keep.
        preexec_fn=sigint_as_at_a_terminal,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    lines: dict[str, str] = {}
    for line in process.stdout:
        key, _, value = line.strip().partition("=")
        lines[key] = value
        if line.startswith("Ctrl-C"):
            break
    else:
        process.wait(timeout=60)
        pytest.fail(f"the harness exited with {process.returncode}:\n{process.stderr.read()}")
    kubeconfig = Path(lines["export KUBECONFIG"])
    yield Harness(process, kubeconfig, kubeconfig.parent)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _answers(kubectl: Path, kubeconfig: Path) -> bool:
    done = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


def test_a_second_control_plane_leaves_the_first_running(
    plane: ControlPlane, harness: Harness
) -> None:
    assert harness.run_dir != plane.run_dir
    assert harness.kubeconfig != plane.kubeconfig
    assert _answers(plane.kubectl_binary, plane.kubeconfig), "the first control plane was stopped"
    assert _answers(plane.kubectl_binary, harness.kubeconfig)
    assert all(map(_running, _children_of(plane.run_dir).values()))
    assert plane.kubeconfig.exists(), "the first control plane's run directory was wiped"


def test_only_run_directories_whose_owner_is_gone_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controlplane, "RUNS_DIR", tmp_path)
    identity = controlplane._identity
    sleepers: list[subprocess.Popen[bytes]] = []

    def sleeper() -> subprocess.Popen[bytes]:
        sleepers.append(subprocess.Popen(["sleep", "300"], start_new_session=True))
        return sleepers[-1]

    def run_dir(name: str, owner: str, pids: list[str]) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "owner").write_text(owner + "\n")
        (path / "pids").write_text("".join(f"{line}\n" for line in pids))
        return path

    try:
        gone_owner = sleeper()
        gone = identity(gone_owner.pid)
        gone_owner.kill()
        gone_owner.wait()
        alive_owner, alive_child, orphan, bystander = sleeper(), sleeper(), sleeper(), sleeper()
        kept = run_dir("1-kept", identity(alive_owner.pid), [identity(alive_child.pid)])
        left = run_dir("2-left", gone, [identity(orphan.pid)])
        # A pid recorded by a dead run, since reused by another process (other start time).
        recycled = run_dir("3-recycled", gone, [f"{bystander.pid} 1"])
        (tmp_path / "a-file").write_text("not a run directory\n")

        removed = controlplane.remove_leftovers()

        assert sorted(removed) == [left, recycled]
        assert kept.exists()
        assert not left.exists()
        assert not recycled.exists()
        assert (tmp_path / "a-file").exists()
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert alive_child.poll() is None, "a live owner's process was killed"
        assert bystander.poll() is None, "a recycled pid's new process was killed"
    finally:
        for process in sleepers:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    "signals",
    [
        pytest.param((signal.SIGINT,), id="ctrl-c"),
        pytest.param((signal.SIGINT, signal.SIGINT), id="ctrl-c-twice-as-uv-run-delivers-it"),
        pytest.param((signal.SIGTERM,), id="sigterm"),
        pytest.param((signal.SIGHUP,), id="sighup"),
        pytest.param((signal.SIGINT, signal.SIGTERM), id="ctrl-c-then-sigterm"),
    ],
)
def test_a_stop_signal_stops_every_process_quietly(
    harness: Harness, signals: tuple[signal.Signals, ...]
) -> None:
    children = _children_of(harness.run_dir)
    assert all(map(_running, children.values()))
    for signum in signals:
        harness.process.send_signal(signum)
        time.sleep(0.3)
    left = _wait_gone(children, STOP_WITHIN)
    assert not left, f"still running {STOP_WITHIN:.0f} s after {signals}: {left}"
    assert harness.process.wait(timeout=30) == 128 + signals[0]
    assert harness.process.stderr is not None
    stderr = harness.process.stderr.read()
    assert "Traceback" not in stderr, stderr
    stop_lines = [line for line in stderr.splitlines() if "control plane stopped" in line]
    assert len(stop_lines) == 1, stderr
    assert "kube-controller-manager, kube-apiserver, etcd in" in stop_lines[0]


def test_sigkill_of_the_harness_takes_its_processes_down(harness: Harness) -> None:
    children = _children_of(harness.run_dir)
    harness.process.kill()
    harness.process.wait(timeout=30)
    left = _wait_gone(children, 5)
    assert not left, f"the harness was SIGKILLed, these run on: {left}"


def test_the_stop_goes_in_dependency_order_without_sigkill(
    plane: ControlPlane, capfd: pytest.CaptureFixture[str]
) -> None:
    with controlplane.control_plane(plane.bin_dir) as second:
        children = _children_of(second.run_dir)
        stopping = time.monotonic()
    took = time.monotonic() - stopping
    assert not _wait_gone(children, 0)
    assert took < STOP_WITHIN, f"the stop took {took:.1f} s"
    stop_line = capfd.readouterr().err.strip().splitlines()[-1]
    assert "stopped (exit): kube-controller-manager, kube-apiserver, etcd in" in stop_line
