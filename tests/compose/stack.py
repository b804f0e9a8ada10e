"""The compose stack brought up for real: Compose v2 against Docker or `podman system service`.

Test harness only, nothing of it belongs in the product. With podman (Debian 12's 4.3) it
makes up for three gaps of that engine, each the narrowest it can be:

- ``podman system service`` on a socket under ``.local/compose`` stands in for the Docker
  daemon; Compose talks to it through ``DOCKER_HOST`` (the service is stopped afterwards);
- podman schedules healthchecks through systemd timers, and there is no systemd here: a
  thread (:class:`HealthcheckScheduler`) runs ``podman healthcheck run`` for every
  container still starting, at the pace Docker would (``start_interval`` within the start
  period, ``interval`` after it), so ``depends_on: service_healthy`` works as with Docker;
- podman 4.3 answers with API version 1.41, and Compose refuses ``start_interval`` below
  1.44 (Docker 25): an override file generated from docker-compose.yml resets that key
  (``!reset``) and nothing else; the scheduler still honours it.

Two checkouts on one machine can run it at once: each has its own podman store, the
project name is derived from the checkout's path (:func:`compose_project`), so the
machine-wide CNI network ``<project>_default`` differs, and ``down -v`` only ever names
this checkout's project. Clean-up runs to its end whatever SIGINTs arrive
(:class:`ShieldedExitStack`, :meth:`Compose.down`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.images.engine import ROOT, Engine, run_command, run_shielded, sigint_deferred

COMPOSE_FILE = ROOT / "docker-compose.yml"
WORK = ROOT / ".local" / "compose"
#: Compose's own label on every container it creates.
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def compose_project(root: Path = ROOT) -> str:
    """The test's Compose project name for the checkout at ``root``: ``msa-compose-test-``
    and 8 hex digits of the SHA-256 of its resolved path.

    A fixed name would be shared by every checkout on the machine: podman keeps CNI network
    definitions machine-wide (``/etc/cni/net.d/<project>_default.conflist``), so one
    checkout's ``down -v`` would delete the network under the other's running stack. The
    name is stable across runs of one checkout, so a run cleans up what an interrupted run
    of the same checkout left, and nothing of another's.
    """
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return f"msa-compose-test-{digest}"


class ShieldedExitStack(contextlib.ExitStack):
    """An ExitStack whose unwinding SIGINT cannot cut short: every clean-up it holds runs.

    A Ctrl-C raises KeyboardInterrupt once; the unwinding it starts (``down -v``, stopping
    the healthcheck thread and ``podman system service``) then runs with SIGINT deferred
    (:func:`sigint_deferred`), so a second SIGINT (a second Ctrl-C, or ``uv run`` forwarding
    one without a terminal, astral-sh/uv#13925) leaves nothing behind; a SIGINT that comes
    during a normal unwinding is raised once it has ended.
    """

    def __exit__(self, *exc: Any) -> bool | None:
        with sigint_deferred():
            return super().__exit__(*exc)


def parse_duration(text: str | None, default: float) -> float:
    """Compose's duration (``"1m30s"``, ``"500ms"``, ``"10s"``) in seconds."""
    if not text:
        return default
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    if not parts:
        raise ValueError(f"not a compose duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


@dataclass(frozen=True)
class Healthcheck:
    """A service's healthcheck timing, as Docker applies it (seconds)."""

    interval: float
    timeout: float
    start_period: float
    start_interval: float


def compose_healthchecks() -> dict[str, Healthcheck]:
    """Every service of docker-compose.yml with a healthcheck, anchors and merges resolved."""
    model = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    checks = {}
    for name, service in model["services"].items():
        check = service.get("healthcheck")
        if not check or check.get("disable"):
            continue
        interval = parse_duration(check.get("interval"), 30.0)
        checks[name] = Healthcheck(
            interval=interval,
            timeout=parse_duration(check.get("timeout"), 30.0),
            start_period=parse_duration(check.get("start_period"), 0.0),
            start_interval=parse_duration(check.get("start_interval"), 5.0),
        )
    return checks


def write_podman_override() -> Path:
    """An override that resets ``start_interval`` for each service that sets it (see above)."""
    model = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    names = [
        name
        for name, service in model["services"].items()
        if "start_interval" in (service.get("healthcheck") or {})
    ]
    lines = [
        "# Written by tests/compose/stack.py for podman 4.3 (API 1.41): Compose refuses",
        "# healthcheck.start_interval below API 1.44. The test's scheduler still applies it.",
        "services:",
    ]
    for name in names:
        lines += [f"  {name}:", "    healthcheck:", "      start_interval: !reset null"]
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "podman-override.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ podman system service


def socket_answers(path: Path, timeout: float = 2.0) -> bool:
    """Whether an engine API answers ``GET /_ping`` on the Unix socket."""

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(str(path))
            self.sock = sock

    connection = UnixConnection("localhost", timeout=timeout)
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextlib.contextmanager
def podman_service(engine: Engine, timeout: float = 60.0) -> Iterator[str]:
    """``podman system service`` on a socket of its own; yields the ``DOCKER_HOST`` value."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "podman.sock"
    path.unlink(missing_ok=True)
    log = (WORK / "podman-service.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        engine.argv("system", "service", "--time=0", f"unix://{path}"),
        env=engine.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not socket_answers(path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podman system service did not answer on {path}")
            time.sleep(0.2)
        yield f"unix://{path}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------ healthcheck scheduler


@dataclass
class _Due:
    next_run: float = 0.0
    running: bool = False


@dataclass
class HealthcheckScheduler:
    """Runs ``podman healthcheck run`` for the project's containers that are still starting.

    Docker's pace: every ``start_interval`` within the start period, every ``interval``
    after it, one check at a time per container; containers already healthy are left alone
    (Compose only waits for them to become healthy). ``runs`` counts the checks made.
    """

    engine: Engine
    project: str
    checks: dict[str, Healthcheck]
    poll: float = 0.5
    runs: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _due: dict[str, _Due] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def __enter__(self) -> HealthcheckScheduler:
        self._thread = threading.Thread(target=self._loop, name="healthchecks", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _containers(self) -> list[dict[str, Any]]:
        done = self.engine.run(
            "ps", "--filter", f"label={PROJECT_LABEL}={self.project}", "--format", "json",
            check=False, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            return []
        found: list[dict[str, Any]] = json.loads(done.stdout or "[]") or []
        return found

    def _loop(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            while not self._stop.is_set():
                now = time.monotonic()
                for container in self._containers():
                    status = str(container.get("Status", ""))
                    service = (container.get("Labels") or {}).get(SERVICE_LABEL, "")
                    check = self.checks.get(service)
                    if (
                        check is None
                        or "(healthy)" in status
                        or container.get("State") != "running"
                    ):
                        continue
                    cid = str(container["Id"])
                    with self._lock:
                        due = self._due.setdefault(cid, _Due())
                        if due.running or now < due.next_run:
                            continue
                        due.running = True
                    started_at = float(container.get("StartedAt") or time.time())
                    in_start_period = time.time() - started_at < check.start_period
                    pace = check.start_interval if in_start_period else check.interval
                    pool.submit(self._run_one, cid, check, pace)
                self._stop.wait(self.poll)

    def _run_one(self, cid: str, check: Healthcheck, pace: float) -> None:
        try:
            self.engine.run("healthcheck", "run", cid, check=False, timeout=check.timeout + 30)
        except subprocess.TimeoutExpired:
            pass
        finally:
            with self._lock:
                self.runs += 1
                due = self._due[cid]
                due.running = False
                due.next_run = time.monotonic() + pace


# ------------------------------------------------------------------ compose


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens on it, else a free port the kernel picks."""
    for candidate in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise RuntimeError("no free port")


@dataclass
class Compose:
    """``docker-compose -p <project> -f docker-compose.yml [-f override] …`` with an environment."""

    binary: Path
    project: str
    env: dict[str, str]
    files: list[Path]

    def argv(self, *args: str) -> list[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        return [
            str(self.binary),
            "--project-directory",
            str(ROOT),
            *files,
            "-p",
            self.project,
            *args,
        ]

    def run(
        self, *args: str, timeout: float = 600, check: bool = True, shielded: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """``docker-compose … args``, output captured; ``shielded`` as :func:`run_shielded`."""
        run = run_shielded if shielded else run_command
        done = run(self.argv(*args), env=self.env, capture=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(
                f"docker-compose {' '.join(args)} exited {done.returncode}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
            )
        return done

    def down(self, timeout: int = 30) -> subprocess.CompletedProcess[str]:
        """``down --volumes --remove-orphans`` of this project only, run to its end even when
        SIGINT arrives meanwhile (it is the clean-up of an interrupted run too)."""
        return self.run(
            "down", "--volumes", "--remove-orphans", "--timeout", str(timeout),
            check=False, timeout=timeout + 300, shielded=True,
        )  # fmt: skip

    def diagnostics(self) -> str:
        """``ps -a`` and the last log lines of every container, for a failure message."""
        out = [self.run("ps", "-a", check=False, timeout=120).stdout]
        logs = self.run("logs", "--no-color", "--tail", "15", check=False, timeout=120)
        out.append(logs.stdout[-12000:])
        return "\n".join(out)


def compose_env(
    docker_host: str | None, images: dict[str, str], gateway_port: int
) -> dict[str, str]:
    """The environment Compose runs with: the engine, the image choices, the gateway port.

    ``docker_host`` (podman's socket) replaces whatever engine the shell names; without it
    Docker is reached as the shell's ``DOCKER_*`` settings say. Neither the shell's
    ``COMPOSE_*`` settings (another project name or file) nor its values for the file's own
    variables leak in (``make test`` exports deploy/local/local.env, with another admin
    password): the file's defaults apply, those of .env.example, except ``IMAGE_PREFIX`` and
    ``IMAGE_TAG``, which name the images just built.
    """
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text)) - {"IMAGE_PREFIX", "IMAGE_TAG"}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k not in referenced
    }
    if docker_host:
        for key in [k for k in env if k.startswith("DOCKER_")]:
            del env[key]
        env["DOCKER_HOST"] = docker_host
        # Builds (none here: the images are built beforehand) would go through the engine's
        # own builder, which podman's API provides; BuildKit it does not.
        env["DOCKER_BUILDKIT"] = "0"
    env["GATEWAY_PORT"] = str(gateway_port)
    env.update(images)
    return env
