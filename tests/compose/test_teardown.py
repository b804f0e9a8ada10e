"""The compose harness's clean-up runs to its end under repeated SIGINT, and names this checkout's project only.

A Ctrl-C during bring-up raises KeyboardInterrupt once; ``down -v`` then runs in the
unwinding. Without a terminal, ``uv run`` forwards SIGINT to its child on top of the
process group's own delivery (astral-sh/uv#13925), and a user may press Ctrl-C again: a
second SIGINT must not cut ``down -v`` short, or containers, volumes and the network stay
behind. Here a harness process drives a fake ``docker-compose`` (a shell script that
records what it is asked to do; ``down`` takes 3 s) and receives SIGINT, as the whole
process group does from a terminal, once during ``up`` and twice during ``down``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deploy.images.engine import ROOT, sigint_deferred
from tests.compose.stack import ShieldedExitStack, compose_project
from tests.support.signals import sigint_as_at_a_terminal

FAKE_COMPOSE = """\
#!/bin/sh
# A stand-in for docker-compose: records the command it got in $FAKE_LOG.
case " $* " in
  *" up "*) echo up >> "$FAKE_LOG"; exec sleep 60 ;;
  *" down "*) echo down-started >> "$FAKE_LOG"; sleep 3; echo down-done >> "$FAKE_LOG" ;;
esac
"""

HARNESS = """\
import sys
from pathlib import Path

from tests.compose.stack import Compose, ShieldedExitStack

binary, log = Path(sys.argv[1]), sys.argv[2]
compose = Compose(binary, "fake", {"PATH": "/usr/bin:/bin", "FAKE_LOG": log}, [])
with ShieldedExitStack() as stack:
    stack.callback(compose.down)
    compose.run("up", "--detach", timeout=120)
"""


def wait_for(path: Path, line: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while line not in (path.read_text().split() if path.exists() else []):
        assert process.poll() is None, f"harness exited {process.returncode} before {line!r}"
        assert time.monotonic() < deadline, f"no {line!r} after {timeout:.0f}s"
        time.sleep(0.05)


def test_down_runs_to_its_end_when_sigint_comes_during_up_and_twice_during_down(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "docker-compose"
    fake.write_text(FAKE_COMPOSE)
    fake.chmod(0o755)
    harness = tmp_path / "harness.py"
    harness.write_text(textwrap.dedent(HARNESS))
    log = tmp_path / "log"
    # A process group of its own, SIGINT at its default, as `make` runs under setsid.
    process = subprocess.Popen(
        [sys.executable, str(harness), str(fake), str(log)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        preexec_fn=sigint_as_at_a_terminal,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(log, "up", process, timeout=60)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole process group
        wait_for(log, "down-started", process, timeout=30)
        os.killpg(process.pid, signal.SIGINT)  # a second Ctrl-C
        time.sleep(0.2)
        os.kill(process.pid, signal.SIGINT)  # and the one `uv run` forwards
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert log.read_text().split() == ["up", "down-started", "down-done"], stderr.decode()
    # The interruption still ends the run (KeyboardInterrupt after the clean-up).
    assert process.returncode != 0
    assert b"KeyboardInterrupt" in stderr or process.returncode == -signal.SIGINT


def test_a_sigint_during_the_unwinding_is_raised_once_it_has_ended() -> None:
    """Deferred, not lost: every clean-up ran, then KeyboardInterrupt; the handler is back."""
    before = signal.getsignal(signal.SIGINT)
    ran: list[str] = []
    with pytest.raises(KeyboardInterrupt), ShieldedExitStack() as stack:  # noqa: PT012
        stack.callback(ran.append, "last")
        stack.callback(ran.append, "second")
        stack.callback(signal.raise_signal, signal.SIGINT)
    assert ran == ["second", "last"]
    assert signal.getsignal(signal.SIGINT) is before

    # Nested (a shielded command inside the unwinding): raised once, by the outer block.
    ran.clear()
    with pytest.raises(KeyboardInterrupt), sigint_deferred():  # noqa: PT012
        with sigint_deferred():
            signal.raise_signal(signal.SIGINT)
            ran.append("inner")
        ran.append("outer")
    assert ran == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is before


def test_the_project_name_is_this_checkouts_own(tmp_path: Path) -> None:
    """Two checkouts never share a project (nor its machine-wide CNI network); one
    checkout's runs always do, so a run cleans up what an interrupted run left."""
    mine, other = compose_project(ROOT), compose_project(tmp_path / "another-checkout")
    assert mine != other
    assert mine == compose_project(ROOT)
    # Compose's rule for project names: lower-case letters, digits, dashes, underscores.
    assert mine.startswith("msa-compose-test-")
    assert all(c.islower() or c.isdigit() or c in "-_" for c in mine)
