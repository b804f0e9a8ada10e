"""Process supervisor for `make run`: every process of the system on one machine, no Docker.

It plays the part that Kubernetes (or docker compose) plays in production, in the
style of a Procfile runner such as foreman or honcho:

1. Configuration (12-factor III): read ``deploy/local/local.env``; variables already
   set in the environment win.
2. Secrets: without ``JWT_PRIVATE_KEY`` or ``JWT_PRIVATE_KEY_FILE``, create a
   development Ed25519 signing key for member in ``.local/keys/jwt-dev.pem``.
3. Bytecode: compile the environment's and the repository's modules once, as the images do
   at build time (``UV_COMPILE_BYTECODE``), so that no process compiles what it imports at
   each start, even with ``PYTHONDONTWRITEBYTECODE`` set; later runs compile only what changed.
4. Admin processes (12-factor XII): run each service's ``migrate`` against its own
   database (the services' at once: each has its own), then ``chassis topics create``; any
   failure stops everything.
5. Process types (12-factor VIII): start every ``api`` and ``worker``, the gateway and
   the web front end, each with its own port, ``SERVICE_NAME`` (the replicas of one api share
   theirs) and (database per service)
   its own ``DATABASE_URL``, each from its entry point in the environment's ``bin`` (no
   ``uv run`` resolver pass, no ``uv`` process beside each). Their output (logs to stdout, 12-factor XI) is shown together,
   each line prefixed with the process name.
6. Graceful shutdown (12-factor IX): on Ctrl-C or SIGTERM, stop the gateway first
   (no new requests come in), then the APIs and web (a page in flight may still call the
   APIs, through a gateway that is gone: it shows a readable message), then the workers,
   waiting for each and killing only what does not exit in time. If a process dies on its own, everything
   is stopped and the exit code is 1, unless a restart policy is set (below).

Settings of the supervisor itself (``make run`` takes them from ``local.env``):

- ``RUN_API_REPLICAS`` (default 1; ``local.env``: 2) starts every ``<service>-api`` that many
  times, as a Deployment's ``replicas`` would: the first replica is ``board-api`` on its port
  (8002), the k-th ``board-api-k`` on the port + 10 per replica (``board-api-2`` on 8012;
  member 8011, qna 8013, saga 8014). The workers, the gateway and web stay single. The
  gateway gets each service's replicas as one comma-separated URL and balances over them with
  health checks on ``/readyz`` (gateway/src/gateway/replicas.py, docs/gateway.md "Replicas");
  saga's calls to qna fail over between them (``chassis.http``).
- ``RUN_RESTART`` (default ``never``; ``local.env``: ``on-failure``) is the restart policy.
  ``on-failure`` (or its synonym ``always``) starts again, after a capped exponential backoff,
  every process that exits for any reason this supervisor did not cause: a crash, a SIGKILL,
  or a SIGTERM sent from outside to roll it (it then exits 0, gracefully). That is Kubernetes'
  ``restartPolicy: Always`` of a Deployment's pods: a long-running process is never meant to
  end on its own, so every exit of one is a failure. Each exit and restart is logged.
  ``never`` stops everything as described above instead.
- ``RUN_PID_DIR`` (``local.env``: ``.local/run``; relative to the repository): write
  ``<process name>.pid`` there for each long-running process, the id of its process group
  (the service's process), so that a fault can be injected into one process from outside, or
  one replica rolled: ``kill -TERM $(cat .local/run/board-api-2.pid)``. The supervisor's own
  pid is in ``supervisor`` there (stop this checkout's ``make run`` with
  ``kill -INT $(cat .local/run/supervisor)``; ``pkill -f`` would stop every checkout's). The
  files are removed after an orderly stop.
- ``RUN_PORT_OFFSET`` (default 0) is added to every port, for running a second copy of the
  system beside the first (the fault suite in tests/chaos does): 10000 gives the gateway
  18000, the first APIs 18001-18004, web 18005 and the workers 19101-19104. The URLs of our
  own processes (``MEMBER_URL`` ... ``SAGA_URL``, ``WEB_URL``, ``GATEWAY_URL``, ``JWKS_URL``)
  follow, unless the environment sets them to a value other than ``local.env``'s. An explicit
  service URL is used as it is, and that service runs one api replica: nothing would send a
  second one traffic (the fault suite names its services so, and keeps its one-replica shape).

A rolling restart with no failed request (tests/system/local/test_rolling_restart.py): SIGTERM
one replica; it turns unready at once and keeps serving for ``SHUTDOWN_DRAIN_SECONDS`` (1.5 s
in ``local.env``, three of the gateway's 0.5 s health-check intervals), in which the gateway
stops sending it requests; then it closes its listener and drains what it still has; the
supervisor starts it again; wait for its ``/readyz`` before rolling the next.

Observing (``make observe``, docs/observability.md): ``run.py observe on`` writes
``<RUN_PID_DIR>/observe.env``, the OpenTelemetry settings that export every trace to the local
Zipkin (``OTEL_TRACES_EXPORTER=zipkin``, sampled at 100 %), and rolls the processes of a running
supervisor one at a time; ``observe off`` removes the file and rolls them again. The supervisor
reads that file at every (re)start of a process, and applies it only while Zipkin answers its
``/health`` then: a file left behind (Zipkin stopped without ``make observe-down``, a machine
rebooted) makes no process started afterwards export to a dead Zipkin; the supervisor says it
starts that process without exporting. Processes already exporting when Zipkin stops keep
trying until they restart, each logging one warning (and one a minute while it lasts; the
chassis's ``ReportingSpanExporter``). When observing starts, the supervisor prints the two UIs
once; at its stop, that Zipkin and Prometheus still run (``make observe-status``,
``make observe-down``). ``run.py prometheus-config`` prints the local Prometheus's scrape
configuration, generated from the same process table (deploy/local/infra.sh prometheus-up).

A deployable whose ``cli.py`` does not exist yet is skipped with a notice.
Run it with ``make run`` (which first starts the infrastructure with
``deploy/local/infra.sh up``) or ``uv run python deploy/local/run.py``.
"""

from __future__ import annotations

import compileall
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / "deploy" / "local" / "local.env"
DEV_KEY_FILE = REPO / ".local" / "keys" / "jwt-dev.pem"
CHASSIS_CLI = REPO / "libs" / "chassis" / "src" / "chassis" / "cli.py"
#: The environment this supervisor runs in (``.venv``): its entry points start the processes.
VENV_BIN = Path(sys.executable).parent
#: What ``compile_bytecode`` compiles besides the environment's site-packages.
SOURCE_DIRS = ("libs", "services", "saga/src", "gateway/src", "web/src")

# Shutdown order: the gateway first, so no new request reaches the APIs; then the
# APIs; the workers last, so the outbox relay can still publish what the APIs wrote.
GATEWAY, API, WORKER = 0, 1, 2
TIER_NAMES = {GATEWAY: "the gateway", API: "the APIs", WORKER: "the workers"}

# Settings meant for one process only; they are not handed to every process.
PER_PROCESS_SETTINGS = (
    "MEMBER_DATABASE_URL",
    "BOARD_DATABASE_URL",
    "QNA_DATABASE_URL",
    "SAGA_DATABASE_URL",
    "PG_ADMIN_URL",
    "JWT_PRIVATE_KEY",
    "JWT_PRIVATE_KEY_FILE",
    "ADMIN_PASSWORD",
)


@dataclass(frozen=True)
class Deployable:
    """One deployable (one image in production) and the processes it runs here."""

    name: str
    cli: Path  # its cli.py; the deployable is skipped while this file is missing
    http_port: int
    worker_port: int | None = None  # None: no worker process (the gateway, web)
    has_database: bool = True

    @property
    def database_setting(self) -> str:
        return f"{self.name.upper()}_DATABASE_URL"

    @property
    def url_setting(self) -> str:
        """The setting that tells the other processes where its api is (``WEB_URL`` ...)."""
        return f"{self.name.upper()}_URL"


DEPLOYABLES = (
    Deployable("member", REPO / "services/member/src/member/cli.py", 8001, 9101),
    Deployable("board", REPO / "services/board/src/board/cli.py", 8002, 9102),
    Deployable("qna", REPO / "services/qna/src/qna/cli.py", 8003, 9103),
    Deployable("saga", REPO / "saga/src/saga/cli.py", 8004, 9104),
    Deployable("gateway", REPO / "gateway/src/gateway/cli.py", 8000, has_database=False),
    Deployable("web", REPO / "web/src/web/cli.py", 8005, has_database=False),
)


@dataclass(frozen=True)
class ProcessSpec:
    """What to start: a name for the logs, a command line, its environment."""

    name: str
    command: list[str]
    env: dict[str, str]
    tier: int = WORKER  # shutdown order of a long-running process
    deployable: str = ""  # the deployable it belongs to (its Prometheus `deployable` label)


@dataclass
class Running:
    """A started process and the thread copying its output to ours."""

    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    output: threading.Thread
    started_at: float = 0.0  # time.monotonic() at start
    restarts: int = 0  # how often the restart policy has started it again


#: Replica k of an api listens on its port + REPLICA_PORT_STEP * (k - 1).
REPLICA_PORT_STEP = 10
#: At most 10: each service's replicas then stay below 8100 (member 8001, 8011 ... 8091).
MAX_REPLICAS = 10
#: ``RUN_RESTART`` values. ``on-failure`` and ``always`` are one rule here (see ``supervise``).
RESTART_POLICIES = ("never", "on-failure", "always")

#: Restart backoff (seconds): doubled after each exit, up to the cap; a process that ran
#: longer than RESTART_RESET_SECONDS starts again from the first delay. Kubernetes does
#: the same with 10 s and 5 min; a local run wants the process back sooner.
RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 5.0
RESTART_RESET_SECONDS = 30.0


# --------------------------------------------------------------------------- output

NAME_WIDTH = len("member-migrate")
COLOURS = itertools.cycle(["36", "33", "35", "32", "34", "96", "93", "95", "92", "94"])
USE_COLOUR = sys.stdout.isatty() and "NO_COLOR" not in os.environ
print_lock = threading.Lock()


def prefix_for(name: str) -> str:
    """The fixed-width, coloured ``name |`` in front of each line of a process."""
    label = f"{name:<{NAME_WIDTH}} |"
    return f"\033[{next(COLOURS)}m{label}\033[0m" if USE_COLOUR else label


SUPERVISOR = (
    f"\033[1m{'run.py':<{NAME_WIDTH}} |\033[0m" if USE_COLOUR else f"{'run.py':<{NAME_WIDTH}} |"
)


def say(message: str) -> None:
    """Print a line of the supervisor's own."""
    with print_lock:
        print(f"{SUPERVISOR} {message}", flush=True)


def copy_output(stream: IO[bytes], prefix: str) -> None:
    """Copy a child's output line by line, each line behind its prefix."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        with print_lock:
            print(f"{prefix} {line}", flush=True)
    stream.close()


# ---------------------------------------------------------------------- configuration


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines; blank lines and ``#`` comments are ignored."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def ensure_signing_key(env: dict[str, str]) -> None:
    """Give member a signing key: a development Ed25519 key unless one is configured."""
    if env.get("JWT_PRIVATE_KEY") or env.get("JWT_PRIVATE_KEY_FILE"):
        return
    if not DEV_KEY_FILE.exists():
        DEV_KEY_FILE.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        openssl = ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(DEV_KEY_FILE)]
        subprocess.run(openssl, check=True)  # noqa: S603 - fixed command, no shell
        DEV_KEY_FILE.chmod(0o600)
        say(f"generated a development signing key: {DEV_KEY_FILE.relative_to(REPO)}")
    env["JWT_PRIVATE_KEY_FILE"] = str(DEV_KEY_FILE)


def process_env(
    shared: dict[str, str], deployable: Deployable, process_name: str
) -> dict[str, str]:
    """The environment of one process: the shared settings plus its own."""
    env = {key: value for key, value in shared.items() if key not in PER_PROCESS_SETTINGS}
    env["SERVICE_NAME"] = process_name
    env["PYTHONUNBUFFERED"] = "1"  # log lines appear as they are written
    env.pop("DATABASE_URL", None)
    if deployable.has_database:
        # Database per service: each process sees only its own service's database.
        env["DATABASE_URL"] = shared[deployable.database_setting]
    if deployable.name == "member":
        # Only member signs tokens and seeds the admin account.
        for key in ("JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_FILE", "ADMIN_PASSWORD"):
            if key in shared:
                env[key] = shared[key]
    return env


def command(program: str, *args: str) -> list[str]:
    """``program``'s entry point in this environment, or ``uv run`` when it has none (run.py
    started by an interpreter outside the project's environment)."""
    entry_point = VENV_BIN / program
    if entry_point.exists():
        return [str(entry_point), *args]
    # --no-sync: `make run` has synced the environment already.
    return ["uv", "run", "--no-sync", program, *args]


def compile_bytecode() -> None:
    """Write the ``.pyc`` of every module of the environment and the repository that has none or
    an outdated one (``compileall`` compares the source's mtime; a warm tree costs a stat per
    file). Python reads cached bytecode even where ``PYTHONDONTWRITEBYTECODE`` forbids writing
    it, so a process then starts without compiling its imports: about half its start CPU."""
    started = time.monotonic()
    dirs = [Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    dirs += [REPO / d for d in SOURCE_DIRS if (REPO / d).is_dir()]
    results = [compileall.compile_dir(d, quiet=2) for d in dirs]  # each, even after a failure
    ok = all(results)
    say(
        f"bytecode compiled in {time.monotonic() - started:.1f}s" + ("" if ok else " (some failed)")
    )


def admin_processes(shared: dict[str, str], present: list[Deployable]) -> list[ProcessSpec]:
    """One-off processes to run before the others: migrations, then topics."""
    specs = [
        ProcessSpec(
            f"{d.name}-migrate",
            command(d.name, "migrate"),
            process_env(shared, d, f"{d.name}-migrate"),
        )
        for d in present
        if d.has_database
    ]
    if CHASSIS_CLI.exists():
        chassis = Deployable("chassis", CHASSIS_CLI, 0, has_database=False)
        specs.append(
            ProcessSpec(
                "topics",
                command("chassis", "topics", "create"),
                process_env(shared, chassis, "topics"),
            )
        )
    else:
        say("skipping `chassis topics create`: libs/chassis/src/chassis/cli.py does not exist yet")
    return specs


def port_offset(shared: dict[str, str]) -> int:
    """``RUN_PORT_OFFSET`` as a number (0 when unset)."""
    return int(shared.get("RUN_PORT_OFFSET", "0") or "0")


def explicit_settings(environ: Mapping[str, str], defaults: Mapping[str, str]) -> set[str]:
    """The variables ``environ`` sets to a value of its own, not the one ``local.env`` gives.

    ``set -a; source deploy/local/local.env`` (how the tests and a shell session get the
    settings) puts every URL of the file into the environment unchanged; counting those as
    explicit would keep an offset copy's gateway on the first copy's services and JWKS."""
    return {key for key, value in environ.items() if defaults.get(key) != value}


def api_replicas(shared: Mapping[str, str]) -> int:
    """``RUN_API_REPLICAS`` as a number (1 when unset); raises ValueError outside 1 to
    ``MAX_REPLICAS``, or when it is not a number."""
    value = shared.get("RUN_API_REPLICAS", "1") or "1"
    replicas = int(value) if value.strip().isdigit() else 0
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"RUN_API_REPLICAS must be 1 to {MAX_REPLICAS}, not {value!r}")
    return replicas


def replica_name(deployable: Deployable, replica: int) -> str:
    """``board-api`` for the first replica, ``board-api-2`` for the second ..."""
    return f"{deployable.name}-api" if replica == 1 else f"{deployable.name}-api-{replica}"


def replica_port(deployable: Deployable, replica: int, offset: int) -> int:
    """The first replica's port (8002 for board), then 10 further per replica (8012, 8022 ...),
    plus ``RUN_PORT_OFFSET``: the ports 8000-8005 stay as they were, and no two collide
    while there are at most 10 replicas."""
    return deployable.http_port + offset + REPLICA_PORT_STEP * (replica - 1)


def apply_service_urls(shared: dict[str, str], explicit: set[str]) -> None:
    """Point the URL of every process of ours (``<NAME>_URL``: the services, the gateway, web)
    at its port (``RUN_PORT_OFFSET`` included), except those set in ``explicit``: an offset copy
    whose web called the first copy's gateway, or whose gateway sent pages to the first copy's
    web, would be wired to the wrong system.

    With ``RUN_API_REPLICAS`` above 1, a service's URL lists every replica, comma-separated
    (``BOARD_URL=http://127.0.0.1:8002,http://127.0.0.1:8012``): the gateway balances over
    them (gateway/src/gateway/replicas.py), and saga's calls to qna fail over between them
    (``chassis.http``). An explicit URL is left alone (and ``long_running_processes`` then
    starts one replica of that service). ``JWKS_URL`` names the first member replica: the verifiers keep their
    cached keys while a refetch fails, so a restarting replica costs them nothing."""
    offset = port_offset(shared)
    replicas = api_replicas(shared)
    if not offset and replicas == 1:
        return
    for d in DEPLOYABLES:
        if d.url_setting in explicit:
            continue
        count = replicas if d.worker_port is not None else 1
        shared[d.url_setting] = ",".join(
            f"http://127.0.0.1:{replica_port(d, k, offset)}" for k in range(1, count + 1)
        )
    if "JWKS_URL" not in explicit:
        first_member = shared["MEMBER_URL"].split(",")[0]
        shared["JWKS_URL"] = f"{first_member}/.well-known/jwks.json"


def long_running_processes(
    shared: dict[str, str], present: list[Deployable], explicit: frozenset[str] = frozenset()
) -> list[ProcessSpec]:
    """The api replicas and the worker of every service, the gateway and web.

    Every replica of one api has the same environment but its port, as the pods of one
    Kubernetes Deployment do: the same ``SERVICE_NAME`` (``board-api``) in its logs and metrics;
    the process name (``board-api-2``) tells them apart in this output and the pid files. A
    service whose URL is in ``explicit`` runs one replica: the URL names where it is."""
    offset = port_offset(shared)
    specs: list[ProcessSpec] = []
    for d in present:
        if d.worker_port is None:  # the gateway, web: one process each
            env = process_env(shared, d, d.name)
            env["HTTP_PORT"] = str(d.http_port + offset)
            tier = GATEWAY if d.name == "gateway" else API
            specs.append(ProcessSpec(d.name, command(d.name, "api"), env, tier, d.name))
            continue
        replicas = 1 if d.url_setting in explicit else api_replicas(shared)
        for k in range(1, replicas + 1):
            env = process_env(shared, d, replica_name(d, 1))
            env["HTTP_PORT"] = str(replica_port(d, k, offset))
            specs.append(ProcessSpec(replica_name(d, k), command(d.name, "api"), env, API, d.name))
        env = process_env(shared, d, f"{d.name}-worker")
        env["WORKER_PORT"] = str(d.worker_port + offset)
        specs.append(
            ProcessSpec(f"{d.name}-worker", command(d.name, "worker"), env, WORKER, d.name)
        )
    return specs


# -------------------------------------------------------------------------- processes


def start(spec: ProcessSpec, overlay: Mapping[str, str] | None = None) -> Running:
    """Start a process in a session of its own and copy its output to ours; ``overlay``
    (the observe settings) is added to its environment for this start only.

    Its own session means Ctrl-C in the terminal reaches only this supervisor, which
    then stops the processes in the right order.
    """
    popen = subprocess.Popen(  # noqa: S603 - commands built above, no shell
        spec.command,
        cwd=REPO,
        env={**spec.env, **(overlay or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert popen.stdout is not None
    output = threading.Thread(
        target=copy_output, args=(popen.stdout, prefix_for(spec.name)), daemon=True
    )
    output.start()
    return Running(spec, popen, output, started_at=time.monotonic())


def write_pid_file(pid_dir: str | None, running: Running) -> None:
    """Record the process group of ``running`` as ``<pid_dir>/<name>.pid`` (when asked to)."""
    if pid_dir:
        path = Path(pid_dir) / f"{running.spec.name}.pid"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{running.popen.pid}\n", encoding="utf-8")
        tmp.replace(path)  # readers never see a half-written file


def resolve_pid_dir(setting: str | None) -> str | None:
    """``RUN_PID_DIR`` as an absolute path (a relative one is under the repository, wherever
    run.py was started from); None when unset or empty."""
    if not setting:
        return None
    path = Path(setting)
    return str(path if path.is_absolute() else REPO / path)


def remove_pid_files(pid_dir: str | None, processes: list[Running]) -> None:
    """After an orderly stop: no pid file is left to name a process that is gone (or, later,
    an unrelated process that reused the id)."""
    if pid_dir:
        for process in processes:
            with contextlib.suppress(FileNotFoundError):
                (Path(pid_dir) / f"{process.spec.name}.pid").unlink()


def run_to_completion(specs: list[ProcessSpec]) -> list[int]:
    """Run one-off admin processes side by side and return their exit codes, in order."""
    running = []
    for spec in specs:
        say(f"running {spec.name}: {' '.join(spec.command)}")
        running.append(start(spec))
    try:
        codes = [process.popen.wait() for process in running]
    except KeyboardInterrupt:
        # Ctrl-C reaches only us (the children have their own sessions): pass it on.
        for process in running:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in running:
            process.popen.wait()
        raise
    for process in running:
        process.output.join()
    return codes


def stop_all(processes: list[Running], timeout: float) -> None:
    """Graceful shutdown, tier by tier: SIGTERM, wait up to ``timeout``, then SIGKILL."""
    for tier in (GATEWAY, API, WORKER):
        group = [p for p in processes if p.spec.tier == tier and p.popen.poll() is None]
        if not group:
            continue
        say(f"stopping {TIER_NAMES[tier]}: SIGTERM to {', '.join(p.spec.name for p in group)}")
        for process in group:
            process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in group:
            try:
                code = process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{process.spec.name} still running after {timeout:.0f}s: SIGKILL")
                os.killpg(process.popen.pid, signal.SIGKILL)  # it and any child
                code = process.popen.wait()
            say(f"{process.spec.name} exited with code {code}")
    for process in processes:
        process.output.join(timeout=2)


def restart_delay(process: Running) -> float:
    """Capped exponential backoff; a process that had been up a while starts over."""
    if time.monotonic() - process.started_at >= RESTART_RESET_SECONDS:
        process.restarts = 0
    return float(min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2**process.restarts))


def readiness_url(spec: ProcessSpec) -> str:
    """Where ``spec``'s process answers its readiness probe (``/readyz`` on its own port)."""
    port = spec.env["WORKER_PORT"] if spec.tier == WORKER else spec.env["HTTP_PORT"]
    return f"http://127.0.0.1:{port}/readyz"


def is_ready(url: str) -> bool:
    """True when ``url`` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def announce_ready(
    specs: list[ProcessSpec],
    stop_requested: threading.Event,
    gateway_url: str | None,
) -> None:
    """Say "all ready" once every process answers its readiness probe, so that a developer
    (and ``make demo``, a walkthrough) knows when the system serves, not only that it was
    started; names those still starting every 15 s. Returns early on a stop request."""
    started = time.monotonic()
    waiting = {spec.name: readiness_url(spec) for spec in specs}
    told = started
    while waiting and not stop_requested.wait(timeout=0.5):
        waiting = {name: url for name, url in waiting.items() if not is_ready(url)}
        if waiting and time.monotonic() - told >= 15:
            told = time.monotonic()
            say(f"still starting after {told - started:.0f}s: {', '.join(sorted(waiting))}")
    if not waiting:
        where = f"; the gateway on {gateway_url}" if gateway_url else ""
        say(f"all ready in {time.monotonic() - started:.1f}s{where}; press Ctrl-C to stop")


def supervise(
    processes: list[Running],
    stop_requested: threading.Event,
    *,
    restart: bool = False,
    pid_dir: str | None = None,
    overlay: Callable[[], Mapping[str, str]] = dict,
) -> int:
    """Wait for Ctrl-C/SIGTERM (exit code 0) or for a process to die on its own (1).

    With ``restart`` (``RUN_RESTART=on-failure`` or ``always``), a process that exits for any
    reason this supervisor did not cause is started again after ``restart_delay`` instead, and
    the supervisor only stops on request: a crash, a SIGKILL, and an exit with code 0 alike,
    since a long-running process is never meant to end by itself. A SIGTERM sent from outside
    (a rolling restart: ``kill -TERM $(cat .local/run/board-api.pid)``) ends the process
    gracefully with code 0, and it comes back as a Deployment's pod does (``restartPolicy:
    Always``). The only exits not followed by a restart are those of ``stop_all``, after this
    loop has returned. If our parent (``make``) is killed, we are
    re-parented: that counts as a stop request too, so ``kill <make's pid>`` or
    ``timeout ... make run`` still shut everything down in order. ``overlay`` is asked for
    the extra environment (the observe settings) at every restart.
    """
    parent = os.getppid()
    due: dict[int, float] = {}  # index in processes -> when to start it again
    while not stop_requested.wait(timeout=0.2):
        if os.getppid() != parent:
            say("parent process exited")
            break
        for index, process in enumerate(processes):
            if index in due:
                if time.monotonic() >= due[index]:
                    del due[index]
                    restarted = start(process.spec, overlay())
                    restarted.restarts = process.restarts + 1
                    processes[index] = restarted
                    write_pid_file(pid_dir, restarted)
                    say(f"{process.spec.name} restarted (restart {restarted.restarts})")
                continue
            code = process.popen.poll()
            if code is None:
                continue
            if not restart:
                say(
                    f"{process.spec.name} exited unexpectedly with code {code}; stopping everything"
                )
                return 1
            delay = restart_delay(process)
            how = (
                "exited with code 0 (stopped from outside, not by run.py)"
                if code == 0
                else f"exited unexpectedly with code {code}"
            )
            say(f"{process.spec.name} {how}; restarting in {delay:.1f}s")
            # The output thread ends with the pipe; the old process group may hold children.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            due[index] = time.monotonic() + delay
    say("stop requested")
    return 0


# ------------------------------------------------------------------------------ observing

#: In ``RUN_PID_DIR``: the observe settings (``KEY=VALUE`` lines), present while observing.
OBSERVE_FILE = "observe.env"
#: In ``RUN_PID_DIR``: the supervisor's own pid, while it supervises (``observe`` rolls its
#: processes only when one runs). Not ``*.pid``: every ``<name>.pid`` there is one supervised
#: process (the fault tools and walkthroughs find the processes so), and this is none of them.
SUPERVISOR_PID_FILE = "supervisor"
#: The alerting rules every Prometheus of the project loads (compose, Kubernetes, this one).
ALERT_RULES = REPO / "deploy" / "observability" / "alerts.yml"
#: Scrape and rule evaluation interval of the local Prometheus: a developer sees a change
#: within seconds (compose scrapes every 10 s).
LOCAL_SCRAPE_INTERVAL = "5s"
#: After a rolled process is ready: two of the gateway's 0.5 s health checks, so that it is
#: back in the rotation before the next replica of its service goes (as in the rolling-restart
#: test, tests/system/local/test_rolling_restart.py).
ROLL_SETTLE_SECONDS = 1.5
#: How long one rolled process may take from SIGTERM until it is ready again.
ROLL_TIMEOUT_SECONDS = 120.0


def zipkin_port(shared: Mapping[str, str]) -> int:
    """``ZIPKIN_PORT`` (deploy/local/infra.sh zipkin-up; default 9411)."""
    return int(shared.get("ZIPKIN_PORT") or "9411")


def prometheus_port(shared: Mapping[str, str]) -> int:
    """``PROMETHEUS_PORT`` (deploy/local/infra.sh prometheus-up; default 9090)."""
    return int(shared.get("PROMETHEUS_PORT") or "9090")


def observe_settings(shared: Mapping[str, str]) -> dict[str, str]:
    """What ``observe on`` writes: export every span to the local Zipkin (the chassis's standard
    exporter selection, libs/chassis/src/chassis/tracing.py) and sample every new trace."""
    return {
        "OTEL_TRACES_EXPORTER": "zipkin",
        "OTEL_EXPORTER_ZIPKIN_ENDPOINT": f"http://127.0.0.1:{zipkin_port(shared)}/api/v2/spans",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }


def observe_urls(shared: Mapping[str, str]) -> str:
    """The two UIs, for the supervisor's and ``make observe``'s messages."""
    return (
        f"traces in Zipkin: http://127.0.0.1:{zipkin_port(shared)}/zipkin/ ; "
        f"metrics and alerts in Prometheus: http://127.0.0.1:{prometheus_port(shared)}/alerts"
    )


def zipkin_health_url(endpoint: str) -> str:
    """Zipkin's ``/health`` on the host of its span endpoint (``.../api/v2/spans``)."""
    parts = urllib.parse.urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}/health"


class ObserveSwitch:
    """The observe settings a process gets at its (re)start: ``<RUN_PID_DIR>/observe.env`` while
    that file exists and the Zipkin it names answers ``/health``; none otherwise.

    Checking Zipkin at each start is what keeps a stale file harmless: after a reboot, or a
    Zipkin stopped without ``make observe-down``, every (re)started process runs as without
    observing, and the supervisor says so once (again when it changes). When observing starts,
    it also says where to look (``urls``, :func:`observe_urls`): once, in ``make run``'s own
    output, whether the switch was on at its start or turned on by ``make observe`` later.

    A process already exporting when Zipkin stops keeps its settings until it restarts; the
    chassis then logs one warning that its exports fail (and one a minute while they do),
    not an error per batch (libs/chassis/src/chassis/tracing.py, ``ReportingSpanExporter``)."""

    def __init__(self, pid_dir: str | None, urls: str | None = None) -> None:
        self.path = Path(pid_dir) / OBSERVE_FILE if pid_dir else None
        self.urls = urls
        self.last: str | None = None  # the last state reported: "on", "off" or "dead"

    def overlay(self) -> dict[str, str]:
        state, settings = "off", {}
        if self.path is not None and self.path.exists():
            settings = read_env_file(self.path)
            endpoint = settings.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "")
            state = "on" if endpoint and is_ready(zipkin_health_url(endpoint)) else "dead"
        if state != self.last and (state != "off" or self.last is not None):
            self._report(state, settings)
        self.last = state
        return settings if state == "on" else {}

    def _report(self, state: str, settings: Mapping[str, str]) -> None:
        endpoint = settings.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "?")
        if state == "on":
            say(f"observing: processes (re)started now export every trace to {endpoint}")
            if self.urls:
                say(self.urls)
        elif state == "dead":
            say(
                f"{self.path} asks for tracing to {endpoint}, but Zipkin does not answer there: "
                "starting without exporting (`make observe` starts it; `make observe-down` "
                "removes the file)"
            )
        else:
            say("not observing: processes (re)started now export no traces")

    def stop_note(self) -> str | None:
        """What to tell at the supervisor's stop while the switch is on: Ctrl-C on ``make run``
        stops the system, not the backends ``make observe`` started, nor removes the switch."""
        if self.path is None or not self.path.exists():
            return None
        if self.last == "on":
            return (
                "Zipkin and Prometheus still run: `make observe-down` stops them "
                "(`make observe-status` shows them)"
            )
        return (
            f"the observe switch {self.path} is still on: `make observe-down` removes it "
            "(`make observe-status` shows it)"
        )


def prometheus_config(specs: list[ProcessSpec], rule_files: list[Path]) -> dict[str, object]:
    """The local Prometheus's configuration: every long-running process in ``specs`` as a
    target on its ``/metrics`` (APIs on ``HTTP_PORT``, workers on ``WORKER_PORT``), in the jobs
    ``api`` and ``worker`` with the target labels ``process`` and ``deployable`` that
    deploy/observability/prometheus.yml gives compose; replicas differ by ``instance``."""
    jobs: dict[str, list[dict[str, object]]] = {"api": [], "worker": []}
    for spec in specs:
        job = "worker" if spec.tier == WORKER else "api"
        port = spec.env["WORKER_PORT"] if spec.tier == WORKER else spec.env["HTTP_PORT"]
        jobs[job].append(
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {"process": job, "deployable": spec.deployable},
            }
        )
    return {
        "global": {
            "scrape_interval": LOCAL_SCRAPE_INTERVAL,
            "evaluation_interval": LOCAL_SCRAPE_INTERVAL,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": targets}
            for job, targets in jobs.items()
        ],
    }


def render_prometheus_config(config: Mapping[str, object]) -> str:
    """YAML for Prometheus: JSON is YAML, and the standard library writes it."""
    header = (
        "# Generated by deploy/local/run.py prometheus-config from its process table\n"
        "# (deploy/local/infra.sh prometheus-up writes it); do not edit.\n"
    )
    return header + json.dumps(config, indent=2) + "\n"


def supervisor_pid(pid_dir: str) -> int | None:
    """The pid of the run.py that supervises with ``pid_dir``, when it is alive."""
    try:
        pid = int((Path(pid_dir) / SUPERVISOR_PID_FILE).read_text(encoding="utf-8"))
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"run.py" in cmdline else None


def read_pid(pid_dir: str, name: str) -> int | None:
    try:
        return int((Path(pid_dir) / f"{name}.pid").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def roll_order(specs: list[ProcessSpec]) -> list[ProcessSpec]:
    """Workers, then the APIs and web, then the gateway: the single gateway last, so that while
    the others roll every request still finds it (its own restart is the one gap)."""
    return sorted(specs, key=lambda spec: -spec.tier)


def roll(specs: list[ProcessSpec], pid_dir: str, *, settle: float = ROLL_SETTLE_SECONDS) -> bool:
    """A rolling restart of a running supervisor's processes, one at a time: SIGTERM (the
    process turns unready, drains and exits 0), the supervisor starts it again with the current
    observe settings, wait for its ``/readyz``, then ``settle`` seconds before the next. False
    when one did not come back within ``ROLL_TIMEOUT_SECONDS``."""
    for spec in roll_order(specs):
        old = read_pid(pid_dir, spec.name)
        if old is None:
            say(f"{spec.name}: no pid file in {pid_dir}; not restarted")
            continue
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(old, signal.SIGTERM)
        deadline = started + ROLL_TIMEOUT_SECONDS
        while True:
            new = read_pid(pid_dir, spec.name)
            if new not in (None, old) and is_ready(readiness_url(spec)):
                break
            if time.monotonic() > deadline:
                say(f"{spec.name} is not back after {ROLL_TIMEOUT_SECONDS:.0f}s; stopping the roll")
                return False
            time.sleep(0.1)
        say(f"{spec.name} restarted and ready in {time.monotonic() - started:.1f}s")
        time.sleep(settle)
    return True


def observe(action: str, shared: dict[str, str], specs: list[ProcessSpec]) -> int:
    """``run.py observe on|off``: write or remove the observe settings, then roll the processes
    of a running supervisor so that each picks them up (none running: the next ``make run``
    does)."""
    pid_dir = resolve_pid_dir(shared.get("RUN_PID_DIR"))
    if not pid_dir:
        say("RUN_PID_DIR is not set: the supervisor keeps the observe switch there")
        return 2
    path = Path(pid_dir) / OBSERVE_FILE
    if action == "on":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        lines = [f"{key}={value}" for key, value in observe_settings(shared).items()]
        tmp.write_text(
            "# Written by `make observe`, removed by `make observe-down` (deploy/local/run.py).\n"
            + "\n".join(lines)
            + "\n",
            encoding="utf-8",
        )
        tmp.replace(path)
    else:
        path.unlink(missing_ok=True)
    supervisor = supervisor_pid(pid_dir)
    if supervisor is None:
        if action == "on":
            # `make run OBSERVE=1` comes here just before it starts the supervisor, which says
            # where to look once its processes export: the links are printed there, once.
            say(
                "observe switch on: the next `make run` starts every process exporting its "
                "traces, and says where to look"
            )
        else:
            say("not observing any more; no `make run` is running")
        return 0
    say(f"rolling the processes of `make run` (pid {supervisor}) one at a time")
    if not roll(specs, pid_dir):
        return 1
    say(observe_urls(shared) if action == "on" else "not observing any more: exports are off")
    return 0


USAGE = "usage: run.py [prometheus-config | observe on|off]"


def main(argv: list[str]) -> int:
    """``run.py``: run everything; ``run.py prometheus-config``: print the local Prometheus's
    configuration; ``run.py observe on|off``: switch trace export (the module docstring)."""
    if argv not in ([], ["prometheus-config"], ["observe", "on"], ["observe", "off"]):
        say(USAGE)
        return 2
    defaults = read_env_file(ENV_FILE)
    shared = {**defaults, **os.environ}
    explicit = explicit_settings(os.environ, defaults)
    try:
        apply_service_urls(shared, explicit)
    except ValueError as exc:
        say(str(exc))
        return 2
    if argv:
        present = [d for d in DEPLOYABLES if d.cli.exists()]
        specs = long_running_processes(shared, present, frozenset(explicit))
        if argv[0] == "prometheus-config":
            print(render_prometheus_config(prometheus_config(specs, [ALERT_RULES])), end="")
            return 0
        return observe(argv[1], shared, specs)
    return run(shared, explicit)


def run(shared: dict[str, str], explicit: set[str]) -> int:
    """Everything (the module docstring): admin processes, then supervise the others."""
    # Until the long-running processes start, SIGTERM interrupts like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ensure_signing_key(shared)
    restart_policy = shared.get("RUN_RESTART", "never")
    if restart_policy not in RESTART_POLICIES:
        say(f"RUN_RESTART must be one of {', '.join(RESTART_POLICIES)}, not {restart_policy!r}")
        return 2
    pid_dir = resolve_pid_dir(shared.get("RUN_PID_DIR"))

    present: list[Deployable] = []
    for deployable in DEPLOYABLES:
        if deployable.cli.exists():
            present.append(deployable)
        else:
            say(
                f"skipping {deployable.name}: {deployable.cli.relative_to(REPO)} does not exist yet"
            )

    try:
        compile_bytecode()
        admin = admin_processes(shared, present)
        # each service migrates its own database: those run at once; the topics after them
        migrations = [spec for spec in admin if spec.name.endswith("-migrate")]
        rest = [spec for spec in admin if spec not in migrations]
        for batch in (migrations, *([spec] for spec in rest)):
            for spec, code in zip(batch, run_to_completion(batch), strict=True):
                if code != 0:
                    say(f"{spec.name} failed with exit code {code}; not starting anything")
                    return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130

    # From here on, Ctrl-C and SIGTERM start an orderly shutdown instead of
    # interrupting this program wherever it happens to be.
    stop_requested = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGHUP, request_stop)

    if pid_dir:
        Path(pid_dir).mkdir(parents=True, exist_ok=True)
        (Path(pid_dir) / SUPERVISOR_PID_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
    switch = ObserveSwitch(pid_dir, observe_urls(shared))
    overlay = switch.overlay()
    processes: list[Running] = []
    for spec in long_running_processes(shared, present, frozenset(explicit)):
        port = spec.env.get("HTTP_PORT") if spec.tier != WORKER else spec.env.get("WORKER_PORT")
        say(f"starting {spec.name} on 127.0.0.1:{port}")
        processes.append(start(spec, overlay))
        write_pid_file(pid_dir, processes[-1])
    if not processes:
        say("nothing to run yet")
        return 0
    say("all started; waiting until every process is ready")
    gateway = next((p.spec for p in processes if p.spec.name == "gateway"), None)
    threading.Thread(
        target=announce_ready,
        args=(
            [p.spec for p in processes],
            stop_requested,
            f"http://127.0.0.1:{gateway.env['HTTP_PORT']}" if gateway else None,
        ),
        name="announce-ready",
        daemon=True,
    ).start()

    exit_code = supervise(
        processes,
        stop_requested,
        restart=restart_policy != "never",
        pid_dir=pid_dir,
        overlay=switch.overlay,
    )
    # Bound per tier: the processes' own drain and shutdown bounds, plus a margin.
    timeout = float(shared.get("SHUTDOWN_DRAIN_SECONDS", "1")) + float(
        shared.get("SHUTDOWN_TIMEOUT_SECONDS", "20")
    )
    stop_all(processes, timeout + 5)
    remove_pid_files(pid_dir, processes)
    if pid_dir:
        (Path(pid_dir) / SUPERVISOR_PID_FILE).unlink(missing_ok=True)
    say(f"stopped; exit code {exit_code}")
    note = switch.stop_note()
    if note:
        say(note)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
