"""Fault injection on a real deployment: an infrastructure instance of its own and the supervised system.

The fault suite never touches the shared infrastructure (PostgreSQL :55432, Redis :56379,
Kafka :9092) that the other tests use. It starts a second instance with
``deploy/local/infra.sh`` (data under ``.local/chaos``, PostgreSQL :55532, Redis :56479,
Kafka :9192-9194) and runs the system on it as ``make run`` does, with
``deploy/local/run.py`` on offset ports (gateway :18000, APIs :18001-18004, workers
:19101-19104) and its restart policy on, as Kubernetes restarts a killed pod.

Faults are real: a server of this instance is stopped and started, a process group is
sent SIGKILL, through the fault tooling of tools/chaos/stack.py (``chaos_target()`` is this
stack as its ``Target``). Every fault is recorded here, so that the supervisor's log of exits
can be compared with the exits the suite caused.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO

from tests.support.infra import REPO
from tools.chaos.stack import BASE_PORTS, SERVICES, Target

CHAOS_DIR = REPO / ".local" / "chaos"
PID_DIR = CHAOS_DIR / "pids"
SUPERVISOR_LOG = CHAOS_DIR / "run.log"

PG_PORT = 55532
REDIS_PORT = 56479
KAFKA_PORT = 9192
PORT_OFFSET = 10000
GATEWAY_URL = f"http://127.0.0.1:{BASE_PORTS['gateway'] + PORT_OFFSET}"
ADMIN_EMAIL = "admin@chaos.example"
ADMIN_PASSWORD = "chaos-admin-pw"
#: A participant command waits this long for its reply before the step times out.
STEP_TIMEOUT_SECONDS = 3.0

PG_ADMIN_URL = f"postgresql://postgres:postgres@127.0.0.1:{PG_PORT}/postgres"
KAFKA_BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
#: What points deploy/local/infra.sh at the chaos instance.
INFRA_SETTINGS = {
    "MSA_LOCAL_DIR": str(CHAOS_DIR),
    "PG_PORT": str(PG_PORT),
    "REDIS_PORT": str(REDIS_PORT),
    "KAFKA_PORT": str(KAFKA_PORT),
    "KAFKA_CONTROLLER_PORT": str(KAFKA_PORT + 1),
    "KAFKA_SASL_PORT": str(KAFKA_PORT + 2),
    # The suite's broker needs less than the shared one; two run side by side.
    "KAFKA_HEAP_OPTS": "-Xms256m -Xmx768m",
}

_EXIT_LINE = re.compile(r"\|\s+(\S+) exited (?:unexpectedly )?with code (-?\d+)")


def database_url(service: str, *, driver: str = "postgresql") -> str:
    """The superuser's URL of one service database of the chaos instance (for the checks)."""
    return f"{driver}://postgres:postgres@127.0.0.1:{PG_PORT}/{service}"


#: The addresses run.py gives our own processes (moved by the port offset, one per replica).
OWN_URLS = frozenset(
    {f"{s.upper()}_URL" for s in SERVICES} | {"JWKS_URL", "WEB_URL", "GATEWAY_URL"}
)


def system_env() -> dict[str, str]:
    """Settings of the chaos system: every address of the infrastructure set explicitly, so
    that the shared instance's settings (``make test`` exports deploy/local/local.env) never
    leak in. The addresses of its own processes are left to run.py, which moves them by
    ``RUN_PORT_OFFSET`` and lists both replicas of each API (``RUN_API_REPLICAS=2``, as
    ``make run``): a scenario that kills an API kills one replica of two, and the
    roll-deployment walkthrough has a second replica to move the traffic to."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KAFKA_") and key not in OWN_URLS
    }
    env.update(
        {
            **{
                f"{s.upper()}_DATABASE_URL": (
                    f"postgresql+asyncpg://{s}:{s}-local-pw@127.0.0.1:{PG_PORT}/{s}"
                )
                for s in SERVICES
            },
            "PG_ADMIN_URL": PG_ADMIN_URL,
            "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP,
            "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "FAULT_INJECTION": "true",
            "LOG_LEVEL": "INFO",
            "RUN_PORT_OFFSET": str(PORT_OFFSET),
            "RUN_API_REPLICAS": "2",
            "RUN_RESTART": "on-failure",
            "RUN_PID_DIR": str(PID_DIR),
            # A short step timeout, so that a delayed participant command outlasts it quickly.
            "STEP_TIMEOUT_SECONDS": str(STEP_TIMEOUT_SECONDS),
            "SWEEP_INTERVAL_SECONDS": "0.2",
            # A refused compensation is tried again after 2 s (default 1 s): time enough for the
            # suite to lift a fault that refused it once, before the next attempt reads it.
            "COMPENSATION_RETRY_SECONDS": "2",
            # The gateway's breaker half-opens 3 s after it opened (default 10 s), so that a
            # restarted upstream is used again within the suite's grace period.
            "BREAKER_RESET_SECONDS": "3",
            # The load comes from one address: the gateway's limit must not be what fails it.
            "RATE_LIMIT_PER_MINUTE": "1000000",
            # Nor member's limits per client address on login and sign-up (0 disables them).
            "LOGIN_PER_ADDRESS_PER_MINUTE": "0",
            "SIGN_UP_PER_ADDRESS_PER_MINUTE": "0",
            "SHUTDOWN_TIMEOUT_SECONDS": "10",
            "NO_COLOR": "1",
        }
    )
    env.pop("DATABASE_URL", None)
    return env


def stack_env() -> dict[str, str]:
    """Every setting of the chaos stack: the system's and its infrastructure instance's (what
    ``Target.from_env`` and ``python -m tools.walkthrough`` read to act on it)."""
    return {**system_env(), **INFRA_SETTINGS}


def chaos_target() -> Target:
    """The chaos stack as a target of the fault tooling (tools/chaos)."""
    return Target.from_env(stack_env())


@dataclass
class Fault:
    """One injected fault: what, when it started and when it was lifted (monotonic seconds)."""

    kind: str
    target: str
    started: float
    lifted: float | None = None


@dataclass
class ChaosStack:
    """The chaos instance and the system on it; ``faults`` is the log of what the suite did."""

    supervisor: subprocess.Popen[bytes] | None = None
    faults: list[Fault] = field(default_factory=list)
    #: Points beyond the sign-up grants before any load (the seeded admin's), once measured.
    points_baseline: int | None = None
    #: What the last invariant check found: a scenario reports only what is new since.
    known_violations: set[str] = field(default_factory=set)
    #: Its processes and infrastructure instance, as the fault tooling sees them.
    target: Target = field(default_factory=chaos_target)
    #: The supervisor's log file (its stdout and stderr), closed by ``stop``.
    _log: IO[bytes] | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """A fresh instance (its old data deleted), then the system; waits until all is ready."""
        self.target.infra.run("reset")
        self.target.infra.run("up")
        CHAOS_DIR.mkdir(parents=True, exist_ok=True)
        for stale in self.target.processes.pid_dir.glob("*.pid"):
            stale.unlink()
        log = SUPERVISOR_LOG.open("wb")
        self._log = log
        self.supervisor = subprocess.Popen(
            [sys.executable, str(REPO / "deploy" / "local" / "run.py")],
            env=system_env(),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout=300)

    def stop(self) -> None:
        """Stop the system (run.py's orderly shutdown), then the chaos instance."""
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.supervisor.pid, signal.SIGKILL)
                self.supervisor.wait()
        # A process group the supervisor could not stop (it was killed itself) goes too.
        for name in self.target.processes.names():
            with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
                self.target.processes.kill(name)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.target.infra.run("down")

    # ------------------------------------------------------------------ readiness

    def wait_ready(self, names: list[str] | None = None, timeout: float = 120) -> float:
        """Wait until every named process (default: all) answers /readyz; returns the seconds."""

        def alive() -> None:
            if self.supervisor is not None and self.supervisor.poll() is not None:
                raise RuntimeError(f"run.py exited:\n{self.log_tail()}")

        try:
            return self.target.processes.wait_ready(names, timeout, alive)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from exc

    def log_tail(self, lines: int = 60) -> str:
        text = SUPERVISOR_LOG.read_text(errors="replace") if SUPERVISOR_LOG.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ faults

    def kill(self, name: str) -> Fault:
        """SIGKILL the process group of ``name`` (the service and any child): a crashed pod."""
        fault = Fault("kill", name, time.monotonic())
        self.faults.append(fault)
        self.target.processes.kill(name)
        return fault

    def stop_server(self, component: str) -> Fault:
        """Stop PostgreSQL, Redis or Kafka of the chaos instance (fast shutdown)."""
        fault = Fault("stop", component, time.monotonic())
        self.faults.append(fault)
        self.target.infra.stop(component)
        return fault

    def start_server(self, fault: Fault) -> None:
        self.target.infra.start(fault.target)
        fault.lifted = time.monotonic()

    def exits(self) -> Counter[str]:
        """Exits the supervisor logged, by process name (the suite's kills included)."""
        return Counter(
            match.group(1)
            for match in _EXIT_LINE.finditer(SUPERVISOR_LOG.read_text(errors="replace"))
        )

    def kills(self) -> Counter[str]:
        """The suite's kills, by process name."""
        return Counter(fault.target for fault in self.faults if fault.kind == "kill")

    def unexpected_exits(self, exits_before: Counter[str], kills_before: Counter[str]) -> list[str]:
        """Exits since the two counts were taken that no ``kill`` of the suite explains."""
        exits = self.exits() - exits_before
        caused = self.kills() - kills_before
        return [
            f"{name} exited {count - caused[name]} time(s) on its own (restarted by the supervisor)"
            for name, count in sorted(exits.items())
            if count > caused[name]
        ]
