"""Fault injection on a running stack: its processes by pid file, its infrastructure servers through infra.sh.

A ``Target`` names the stack acted on: ``make run``'s by default (the settings of
deploy/local/local.env, pid files under ``.local/run/``, the default infrastructure
instance), or any copy of it described by the same settings (``RUN_PORT_OFFSET``,
``RUN_PID_DIR``, the ``<SERVICE>_DATABASE_URL`` and infra.sh's ``MSA_LOCAL_DIR``,
``PG_PORT`` ... ``KAFKA_PORT``): the fault suite's own instance is one.

Faults are real, as a platform would cause them: a process group is sent SIGKILL (a crashed
pod) or SIGTERM (a rolling restart), a server is stopped and started again. deploy/local/run.py
restarts a process that exits and rewrites its pid file, as Kubernetes restarts a container.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from dotenv import dotenv_values
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / "deploy" / "local" / "local.env"
INFRA_SCRIPT = REPO / "deploy" / "local" / "infra.sh"
#: Where ``make run`` writes ``<process name>.pid`` unless ``RUN_PID_DIR`` says otherwise.
DEFAULT_PID_DIR = REPO / ".local" / "run"

SERVICES = ("member", "board", "qna", "saga")
#: The port each long-running process of deploy/local/run.py listens on (its /readyz and
#: /metrics), before ``RUN_PORT_OFFSET`` is added.
BASE_PORTS: dict[str, int] = {
    "gateway": 8000,
    "web": 8005,
    **{f"{s}-api": 8001 + i for i, s in enumerate(SERVICES)},
    **{f"{s}-worker": 9101 + i for i, s in enumerate(SERVICES)},
}
#: Replica n of an api (``<service>-api-n``, n >= 2) listens on the first one's port plus
#: ``REPLICA_PORT_STEP * (n - 1)``: ``board-api-2`` on 8012.
REPLICA_PORT_STEP = 10
#: The settings through which deploy/local/infra.sh acts on an instance other than the default.
INFRA_SETTINGS = (
    "MSA_LOCAL_DIR",
    "MSA_KAFKA_LIBS",
    "PG_PORT",
    "REDIS_PORT",
    "KAFKA_PORT",
    "KAFKA_CONTROLLER_PORT",
    "KAFKA_SASL_PORT",
    "KAFKA_HEAP_OPTS",
)
COMPONENTS = ("postgres", "redis", "kafka")

_REPLICA = re.compile(r"(?P<base>.+-api)-(?P<n>\d+)")


def port_of(name: str, offset: int = 0) -> int:
    """The port of process ``name`` (``board-api``, ``board-api-2``, ``saga-worker`` ...).

    Raises ``KeyError`` for a name deploy/local/run.py does not start."""
    match = _REPLICA.fullmatch(name)
    if match is not None:
        return BASE_PORTS[match["base"]] + REPLICA_PORT_STEP * (int(match["n"]) - 1) + offset
    return BASE_PORTS[name] + offset


@dataclass(frozen=True)
class Processes:
    """The long-running processes of one stack, found by their pid files (each holds the id
    of the process's group, the service process itself)."""

    pid_dir: Path
    offset: int = 0

    def names(self) -> list[str]:
        """Every process with a pid file, sorted."""
        return sorted(path.stem for path in self.pid_dir.glob("*.pid"))

    def replicas(self, api: str) -> list[str]:
        """``api`` (``board-api``) and each further replica of it that has a pid file."""
        return [api] + [
            n for n in self.names() if (m := _REPLICA.fullmatch(n)) and m["base"] == api
        ]

    def pid(self, name: str) -> int:
        """The pid in ``<pid_dir>/<name>.pid``; ``FileNotFoundError`` when there is none."""
        return int((self.pid_dir / f"{name}.pid").read_text(encoding="utf-8"))

    def port(self, name: str) -> int:
        return port_of(name, self.offset)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def ready(self, name: str, timeout: float = 2.0) -> bool:
        """Whether ``name`` answers ``GET /readyz`` with 200."""
        try:
            response = httpx.get(f"{self.url(name)}/readyz", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def wait_ready(
        self,
        names: Iterable[str] | None = None,
        timeout: float = 120,
        alive: Callable[[], None] | None = None,
    ) -> float:
        """Wait until every named process (default: every one with a pid file, and every
        base process) is ready; returns the seconds waited. ``alive`` is called between
        polls and may raise (the supervisor has exited). Raises ``TimeoutError``."""
        started = time.monotonic()
        waiting = list(names) if names is not None else sorted({*BASE_PORTS, *self.names()})
        while True:
            if alive is not None:
                alive()
            waiting = [name for name in waiting if not self.ready(name)]
            if not waiting:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"not ready after {timeout:.0f} s: {', '.join(waiting)}")
            time.sleep(0.3)

    def send(self, name: str, signum: signal.Signals) -> int:
        """Send ``signum`` to the process group of ``name``; returns the pid it went to."""
        pid = self.pid(name)
        os.killpg(pid, signum)
        return pid

    def kill(self, name: str) -> int:
        """SIGKILL ``name`` and any child: a crashed pod (no shutdown code runs)."""
        return self.send(name, signal.SIGKILL)

    def terminate(self, name: str) -> int:
        """SIGTERM ``name``: the graceful shutdown a rolling restart begins with."""
        return self.send(name, signal.SIGTERM)

    def wait_replaced(self, name: str, old_pid: int, timeout: float = 120) -> float:
        """Wait until the supervisor has started ``name`` again (its pid file holds another
        pid) and the new process is ready; returns the seconds. Raises ``TimeoutError``."""
        started = time.monotonic()
        while True:
            try:
                replaced = self.pid(name) != old_pid
            except (FileNotFoundError, ValueError):  # being rewritten
                replaced = False
            if replaced and self.ready(name):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                state = "restarted but not ready" if replaced else "not restarted"
                raise TimeoutError(f"{name} {state} after {timeout:.0f} s")
            time.sleep(0.2)

    def metric(self, name: str, metric: str, **labels: str) -> float | None:
        """The sum of the samples of ``metric`` (its exposition name, ``_total`` included
        for a counter) on ``name``'s ``/metrics`` whose labels include ``labels``; None when
        the process does not answer or has no such sample."""
        try:
            text = httpx.get(f"{self.url(name)}/metrics", timeout=3).text
        except httpx.HTTPError:
            return None
        values = [
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == metric and labels.items() <= sample.labels.items()
        ]
        return sum(values) if values else None


@dataclass(frozen=True)
class Infra:
    """One infrastructure instance of deploy/local/infra.sh, named by ``settings`` (a subset
    of ``INFRA_SETTINGS``; empty: the default instance that ``make run`` uses)."""

    settings: Mapping[str, str] = field(default_factory=dict)
    script: Path = INFRA_SCRIPT

    def run(self, *args: str, timeout: float = 600) -> None:
        """``infra.sh ARGS`` on this instance; ``RuntimeError`` with its output if it fails.

        The script runs in a session of its own: a Ctrl-C in the terminal (SIGINT to the
        foreground process group) must not cut a stop short half-way, with the broker's
        controlled shutdown begun and nobody waiting for its end."""
        env = {k: v for k, v in os.environ.items() if k not in INFRA_SETTINGS}
        with subprocess.Popen(  # noqa: S603 - a fixed script, no shell
            ["bash", str(self.script), *args],  # noqa: S607 - bash from PATH, as make runs it
            env={**env, **self.settings},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            except BaseException:
                # A Ctrl-C in this thread: the script finishes what it began (its own
                # bounds: 60 s for a broker's shutdown), then the interruption goes on.
                process.communicate()
                raise
        if process.returncode != 0:
            raise RuntimeError(f"infra.sh {' '.join(args)} failed:\n{stdout}\n{stderr}")

    def stop(self, component: str) -> None:
        """Stop PostgreSQL, Redis or Kafka of this instance (fast / controlled shutdown)."""
        self.run("stop", self._checked(component))

    def start(self, component: str) -> None:
        """Start it again and wait until it accepts connections (infra.sh first waits for
        the end of a stop still under way)."""
        self.run("start", self._checked(component))

    @staticmethod
    def _checked(component: str) -> str:
        if component not in COMPONENTS:
            raise ValueError(f"{component!r} is none of {', '.join(COMPONENTS)}")
        return component


def _database_name(url: str) -> str:
    return urllib.parse.urlsplit(url).path.lstrip("/")


@dataclass(frozen=True)
class Target:
    """The stack a fault acts on, described by the settings its processes were started with."""

    settings: Mapping[str, str]
    processes: Processes
    infra: Infra
    gateway_url: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Target:
        """The stack that deploy/local/run.py starts with ``environ`` (default: this process's
        environment) over deploy/local/local.env, as run.py reads them: ``make run``'s when
        nothing is set. ``RUN_PORT_OFFSET`` moves every port, the gateway's included."""
        defaults = {k: v for k, v in dotenv_values(ENV_FILE).items() if v is not None}
        settings = {**defaults, **(os.environ if environ is None else environ)}
        offset = int(settings.get("RUN_PORT_OFFSET") or 0)
        # a relative RUN_PID_DIR is under the repository, as run.py resolves it (local.env's .local/run)
        processes = Processes(REPO / (settings.get("RUN_PID_DIR") or DEFAULT_PID_DIR), offset)
        gateway = (
            processes.url("gateway")
            if offset
            else settings.get("GATEWAY_URL", processes.url("gateway"))
        )
        infra = Infra({k: settings[k] for k in INFRA_SETTINGS if k in settings})
        return cls(settings, processes, infra, gateway.rstrip("/"))

    @property
    def admin_email(self) -> str:
        return self.settings["ADMIN_EMAIL"]

    @property
    def admin_password(self) -> str:
        return self.settings["ADMIN_PASSWORD"]

    @property
    def kafka_bootstrap(self) -> str:
        return self.settings["KAFKA_BOOTSTRAP_SERVERS"]

    def database_url(self, service: str) -> str:
        """The superuser's URL (``PG_ADMIN_URL``'s credentials) of ``service``'s database
        (the one its ``<SERVICE>_DATABASE_URL`` names), for checks and corrections by hand."""
        admin = urllib.parse.urlsplit(self.settings["PG_ADMIN_URL"])
        name = _database_name(self.settings[f"{service.upper()}_DATABASE_URL"])
        return urllib.parse.urlunsplit(admin._replace(path=f"/{name}"))

    def step_timeout_seconds(self) -> float:
        """How long a saga step waits for its reply: the stack's ``STEP_TIMEOUT_SECONDS``, or
        the orchestrator's default when the stack does not set it (``make run`` does not)."""
        if self.settings.get("STEP_TIMEOUT_SECONDS"):
            return float(self.settings["STEP_TIMEOUT_SECONDS"])
        from saga.config import Settings  # the default lives with the orchestrator

        default = Settings.model_fields["STEP_TIMEOUT_SECONDS"].default
        return float(default)

    def service_command(self, service: str, *args: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of a one-off admin process of ``service``
        (``board rebuild-read-model``): the stack's settings, with ``DATABASE_URL`` its own
        database (database per service), as deploy/local/run.py starts them."""
        env = {**os.environ, **self.settings}
        env["DATABASE_URL"] = self.settings[f"{service.upper()}_DATABASE_URL"]
        env["SERVICE_NAME"] = f"{service}-{args[0]}" if args else service
        program = Path(sys.executable).parent / service
        return [str(program), *args], env
