"""The container engine: Docker where a daemon answers, else podman configured inside the repository.

    python -m deploy.images.engine env     # the exports that point a shell's podman here

podman reads its configuration from ``.local/containers/`` (``CONTAINERS_CONF``,
``CONTAINERS_STORAGE_CONF``, ``CONTAINERS_REGISTRIES_CONF``) and keeps its images, layers
and containers there, so each checkout has a store of its own and a clean clone starts
from nothing. What podman keeps machine-wide whatever the configuration (network
definitions in ``/etc/cni/net.d``, its run state in ``/run/libpod``, the build cache
mounts in ``/var/tmp/buildah-cache``) is listed in docs/deploy.md. The settings are the
ones podman 4.3 (Debian 12) needs on a machine without systemd and with a cgroup v1
hierarchy:

- ``runtime = "runc"``: crun cannot create containers on such cgroups;
- ``default_ulimits``: podman's default ``nofile``/``nproc`` limits exceed the hard
  limits of an unprivileged session, and every container start would fail;
- ``cgroup_manager = "cgroupfs"`` and ``events_logger = "file"``: no systemd.

Only the standard library: ``make images`` runs this before any environment is synced.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Everything podman keeps for this repository: configuration, image store, run state.
PODMAN_HOME = ROOT / ".local" / "containers"

CONTAINERS_CONF = """\
# Written by deploy/images/engine.py (make podman); podman reads it through CONTAINERS_CONF.
[containers]
# The defaults exceed this machine's hard limits; a container would not start.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
# No systemd: podman's own /etc/hosts and DNS handling, no journald.
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

STORAGE_CONF = """\
# Written by deploy/images/engine.py; podman reads it through CONTAINERS_STORAGE_CONF.
[storage]
driver = "overlay"
graphroot = "{graphroot}"
runroot = "{runroot}"
"""

REGISTRIES_CONF = """\
# Written by deploy/images/engine.py; podman reads it through CONTAINERS_REGISTRIES_CONF.
# Short names (python:3.11..., postgres:17...) mean Docker Hub, as they do for Docker.
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
"""


@dataclass(frozen=True)
class Engine:
    """A container CLI and the environment it must run with."""

    name: str  # "docker" or "podman"
    env: dict[str, str]

    def argv(self, *args: str) -> list[str]:
        return [self.name, *args]

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float | None = None,
        capture: bool = True,
        shielded: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """``<engine> args...``; output captured as text unless ``capture`` is false.

        ``shielded`` is for clean-up (``rm -f``, ``down -v``): the command runs to its end
        even when SIGINT arrives meanwhile (see :func:`run_shielded`).
        """
        done = (run_shielded if shielded else run_command)(
            self.argv(*args), env=self.env, capture=capture, timeout=timeout
        )
        if check and done.returncode != 0:
            raise EngineError(f"{' '.join(self.argv(*args))} exited {done.returncode}", done)
        return done

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def image_size(self, ref: str) -> int:
        """The image's size in bytes (all layers, uncompressed), as ``images`` shows it."""
        out = self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout
        return int(out.strip())


def run_command(
    argv: list[str],
    *,
    env: dict[str, str],
    capture: bool,
    timeout: float | None,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``argv`` without a shell, output captured as text unless ``capture`` is false; never
    raises for a non-zero exit (``TimeoutExpired`` after ``timeout`` seconds)."""
    return subprocess.run(  # noqa: S603 - an engine or Compose CLI, no shell
        argv,
        env=env,
        text=True,
        capture_output=capture,
        timeout=timeout,
        check=False,
        start_new_session=new_session,
    )


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """SIGINT held back inside the block: KeyboardInterrupt is raised once the block has
    ended, not inside it; the previous handler is restored either way.

    For clean-up that must finish once started: a second Ctrl-C (or a runner that forwards
    SIGINT to its child on top of the terminal's own delivery to the process group, as
    ``uv run`` does without a terminal, astral-sh/uv#13925) would otherwise raise
    KeyboardInterrupt inside the ``finally`` and leave containers, volumes and networks
    behind. The interruption is not lost: when the block ends without an exception, it is
    raised then. Only the main thread can change a handler; elsewhere the block runs as is
    (Python delivers SIGINT to the main thread only, so there is nothing to hold back).
    """
    if threading.current_thread() is not threading.main_thread() or _deferring:
        # Not the main thread, or inside an outer block, which raises once it has ended.
        yield
        return
    arrived: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: arrived.append(signum))
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.clear()
        signal.signal(signal.SIGINT, previous)
    if arrived:
        raise KeyboardInterrupt


#: Non-empty while the main thread is inside :func:`sigint_deferred`.
_deferring: list[bool] = []


def run_shielded(
    argv: list[str], *, env: dict[str, str], capture: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end whatever SIGINTs arrive: the caller defers SIGINT meanwhile
    (:func:`sigint_deferred`), and the command runs in a session of its own, so a Ctrl-C
    sent to the terminal's process group (``kill -INT -- -PGID``) does not reach it."""
    with sigint_deferred():
        return run_command(argv, env=env, capture=capture, timeout=timeout, new_session=True)


class EngineError(RuntimeError):
    """An engine command failed; ``result`` holds its output."""

    def __init__(self, message: str, result: subprocess.CompletedProcess[str]) -> None:
        tail = (result.stderr or result.stdout or "").strip()[-2000:]
        super().__init__(f"{message}\n{tail}" if tail else message)
        self.result = result


def podman_settings() -> dict[str, str]:
    """The three variables that point podman at the repository's configuration and store."""
    return {
        "CONTAINERS_CONF": str(PODMAN_HOME / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(PODMAN_HOME / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(PODMAN_HOME / "registries.conf"),
    }


def podman_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that points podman at the repository's configuration and store."""
    return {**(os.environ if base is None else base), **podman_settings()}


def shell_exports() -> str:
    """``export NAME=value`` lines for :func:`podman_settings`, for ``eval`` in a POSIX shell
    (``eval "$(make -s podman-env)"``), so ``podman images``, ``podman run`` and ``podman
    image prune`` see this checkout's store."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in podman_settings().items())


def write_podman_config() -> None:
    """Write (or refresh) the three configuration files under ``.local/containers``."""
    PODMAN_HOME.mkdir(parents=True, exist_ok=True)
    files = {
        "containers.conf": CONTAINERS_CONF,
        "storage.conf": STORAGE_CONF.format(
            graphroot=PODMAN_HOME / "storage", runroot=PODMAN_HOME / "run"
        ),
        "registries.conf": REGISTRIES_CONF,
    }
    for name, text in files.items():
        path = PODMAN_HOME / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def docker_answers(timeout: float = 10) -> bool:
    """Whether a Docker CLI is installed and its daemon answers ``docker info``."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def podman_works() -> bool:
    """Whether podman is installed and can reach its (repository-local) store."""
    if shutil.which("podman") is None:
        return False
    write_podman_config()
    done = subprocess.run(
        ["podman", "info", "--format", "{{.Store.GraphRoot}}"],  # noqa: S607
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


def select_engine(preferred: str | None = None) -> Engine | None:
    """Docker if its daemon answers, else podman; ``preferred`` ("docker"/"podman") forces one.

    None when neither works (the image tests skip, ``make images`` fails with the reason).
    """
    choice = preferred or os.environ.get("CONTAINER_ENGINE") or None
    if choice in (None, "docker") and docker_answers():
        return Engine("docker", dict(os.environ))
    if choice in (None, "podman") and podman_works():
        return Engine("podman", podman_env())
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["env"]:
        print("usage: python -m deploy.images.engine env", file=sys.stderr)
        return 2
    write_podman_config()
    sys.stdout.write(shell_exports())
    return 0


if __name__ == "__main__":
    sys.exit(main())
