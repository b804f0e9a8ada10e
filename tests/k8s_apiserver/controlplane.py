"""A throwaway Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

No kubelet and no scheduler: the controllers turn Deployments, StatefulSets and Jobs into pods,
Pod Security admission judges those pods, and they stay Pending. That is enough to see what an
API server and its controllers do with deploy/k8s (admission, defaulting and normalisation,
immutable fields, server-side apply ownership), not whether the images run (tests/images).

The binaries come from ``deploy/k8s/apiserver/build.sh`` (built once, cached under
``.local/k8s/``). Each control plane has a run directory of its own, ``.local/k8s/run/<pid>-*/``
(data, logs, kubeconfig), so several can run at once from one checkout: the test beside a
control plane someone is looking around in. A run directory is kept after its control plane
stopped, so the logs of a failed run stay to read, and removed by the next start once its owner
process is gone.

Stopping, whatever happened: the ``control_plane()`` context stops the processes in dependency
order (controller manager, API server, etcd), each waited for. In the main thread SIGTERM and
SIGHUP raise :class:`Terminated` (a ``KeyboardInterrupt``), so the ``finally`` runs on
``docker stop``, a CI timeout or a closed terminal too, and a second signal during the stop is
merged into it. On Linux each process also gets ``PR_SET_PDEATHSIG``: it is killed when the
harness dies, even by SIGKILL.

Run ``.venv/bin/python -m tests.k8s_apiserver.controlplane`` to get one to play with: it prints
the KUBECONFIG to export and runs until Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "k8s" / "apiserver" / "build.sh"
# One run directory per control plane below it (see the module docstring).
RUNS_DIR = ROOT / ".local" / "k8s" / "run"
# The service network the API server allocates ClusterIPs from (never routed: no kube-proxy).
SERVICE_CIDR = "10.96.0.0/16"
# Seconds: a cold start on a loaded 2-core machine takes about 20 s.
READY_TIMEOUT = 180.0
# Seconds each process gets to exit on SIGTERM before SIGKILL. Stopped in dependency order,
# each exits in well under a second; the API server needed the SIGKILL only while etcd was
# stopped under it.
STOP_TIMEOUT = 15.0
# The signals that stop a running control plane (besides SIGINT, which Python already raises
# as KeyboardInterrupt): docker stop and CI timeouts send SIGTERM, a closed terminal SIGHUP.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# The line the build script prefixes its progress with (deploy/k8s/apiserver/build.sh).
BUILD_PROGRESS = "[k8s-apiserver build]"


def go_binary() -> str | None:
    """The go command build.sh will use, or None when this machine has no Go."""
    default = Path("/usr/local/go/bin/go")
    return str(default) if default.exists() else shutil.which("go")


def build(progress: Callable[[str], None] | None = None) -> Path:
    """Build (or reuse) the binaries; returns their directory. Raises CalledProcessError.

    A cold build takes 12 minutes or more: each of build.sh's progress lines (a binary
    started, built with its time) is passed to ``progress`` as it comes (default: written to
    stderr), the rest of its stderr (Go's downloads) only kept for the error.
    """
    report = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    with subprocess.Popen(
        ["bash", str(BUILD)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        errors: list[str] = []
        for line in child.stderr:
            errors.append(line)
            if line.startswith(BUILD_PROGRESS):
                report(line.rstrip("\n"))
        stdout = child.stdout.read()
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, BUILD, stdout, "".join(errors))
    return Path(stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def advertise_address() -> str:
    """A non-loopback IPv4 address of this machine.

    The API server publishes it in the ``kubernetes`` Service's endpoints; given a loopback
    address it logs an error every 10 s. The UDP connect sends nothing, it only picks the
    outgoing interface. Falls back to 127.0.0.1 on a machine without a route.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: routed by the default route, never sent
            address: str = sock.getsockname()[0]
        except OSError:
            return "127.0.0.1"
    return address


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane: its kubeconfig, kubectl and the data/log directory."""

    kubeconfig: Path
    kubectl_binary: Path
    bin_dir: Path
    run_dir: Path
    server: str

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane; never raises on a non-zero exit."""
        return subprocess.run(
            [str(self.kubectl_binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def env(self) -> dict[str, str]:
        """The environment for a tool that runs kubectl from PATH (deploy/k8s/apply.py)."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }


def _write_credentials(run_dir: Path) -> tuple[Path, Path, str]:
    """Service-account signing key pair and an admin bearer token (static token file)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = run_dir / "sa.key", run_dir / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    token = secrets.token_hex(24)
    # token,user,uid,"group": system:masters passes every RBAC check.
    (run_dir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    return private, public, token


def _write_kubeconfig(path: Path, server: str, token: str) -> None:
    # The serving certificate is self-signed by the API server at start (--cert-dir), so the
    # client skips verification: loopback only, for a test.
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: test\n  cluster:\n    server: {server}\n"
        "    insecure-skip-tls-verify: true\n"
        f"users:\n- name: admin\n  user:\n    token: {token}\n"
        "contexts:\n- name: test\n  context: {cluster: test, user: admin}\n"
        "current-context: test\n"
    )


# ------------------------------------------------------------------ run directories and owners


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot), or None if it is gone.

    A pid and its start time name one process: a recycled pid has another start time. A
    zombie (exited, not reaped yet) counts as gone. Linux ``/proc/<pid>/stat``, field 22.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    state, started = fields[0], fields[19]
    return None if state in ("Z", "X") else started


def _identity(pid: int) -> str:
    """``"<pid> <start time>"``, as the owner and pids files record a process."""
    return f"{pid} {_start_time(pid)}"


def _is_running(identity: str) -> bool:
    """Whether the process an ``_identity()`` line names still runs (not a recycled pid)."""
    match = re.fullmatch(r"(\d+) (\d+)", identity.strip())
    return match is not None and _start_time(int(match[1])) == match[2]


def _new_run_dir() -> Path:
    """A run directory of this process's own, ``RUNS_DIR/<pid>-<random>``, owner recorded.

    Made under a dot-name and renamed into place once its ``owner`` file is written, so no
    concurrent start ever sees a run directory without its owner.
    """
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=RUNS_DIR))
    (staging / "owner").write_text(_identity(os.getpid()) + "\n")
    run_dir = RUNS_DIR / f"{os.getpid()}-{staging.name.removeprefix('.new-')}"
    staging.rename(run_dir)
    return run_dir


def remove_leftovers() -> list[Path]:
    """Remove the run directories whose owner process is gone; returns the ones removed.

    A process such a run left behind (its owner died before PR_SET_PDEATHSIG could act, or
    was started without it) is SIGKILLed with its process group first, but only if its pid
    still names the same process (``pids`` records the start time too). A run directory whose
    owner still runs, another control plane from this checkout, is never touched.
    """
    removed: list[Path] = []
    with contextlib.suppress(FileNotFoundError):
        for run_dir in sorted(RUNS_DIR.iterdir()):
            try:
                owner = (run_dir / "owner").read_text()
            except OSError:
                continue  # not a run directory (a file, or one removed meanwhile)
            if _is_running(owner):
                continue
            with contextlib.suppress(OSError):
                for line in (run_dir / "pids").read_text().splitlines():
                    if _is_running(line):
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(int(line.split()[0]), signal.SIGKILL)
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir)
    return removed


# ------------------------------------------------------------------ signals


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a control plane ran in the main thread.

    A KeyboardInterrupt, like Ctrl-C's, so every ``finally`` runs (Python's default action for
    these signals skips them) and pytest ends the session with its teardown.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """The signal handlers while a control plane runs in the main thread.

    Running: SIGTERM and SIGHUP raise :class:`Terminated`, SIGINT a KeyboardInterrupt as
    usual. After the first of them, and while stopping, all three are only recorded, so a
    second Ctrl-C (``uv run`` forwards one more, beside the terminal's) or a SIGTERM after
    Ctrl-C cannot cut short the unwinding (pytest's report of the first) or the stop and
    leave a process running. A handler someone else installed, and an ignored signal (nohup's
    SIGHUP), are left alone. In another thread nothing is installed (Python allows handlers
    in the main thread only); PR_SET_PDEATHSIG still covers the processes there.
    """

    def __init__(self) -> None:
        self.stopping = False
        # The signal raised as an exception, if any: under pytest it ends the session outside
        # the context, so the stop line names it from here.
        self.raised: int | None = None
        self.arrived: list[int] = []
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, *STOP_SIGNALS):
                current = signal.getsignal(signum)
                if current in (signal.SIG_DFL, signal.default_int_handler):
                    self._previous[signum] = current
                    signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping or self.raised is not None:
            # Already stopping, or asked to: one stop is enough.
            self.arrived.append(signum)
            return
        self.raised = signum
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)


# PR_SET_PDEATHSIG from <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1


def _die_with_harness() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when the harness dies (Linux).

    ``PR_SET_PDEATHSIG`` survives the exec and fires even when the harness is SIGKILLed,
    which no handler can catch. It fires when the *thread* that started the child ends, so
    a control plane must live no longer than the thread that started it (the context manager
    sees to that). The parent check closes the race of a harness that died before the prctl.
    SIGKILL, not SIGTERM: nobody is left to wait for a graceful stop, and the data is
    throwaway. Elsewhere: None (the ordered stop alone).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    harness = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != harness:
            os._exit(1)

    return preexec


# ------------------------------------------------------------------ processes


class _Processes:
    """Child processes, each in its own process group (so a Ctrl-C to the terminal's group
    reaches the harness alone, which stops them in order), recorded in ``run_dir/pids``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._preexec = _die_with_harness()

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.run_dir / f"{name}.log").open("wb")
        child = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.run_dir,
            # Runs between fork and exec: a prctl and a getppid, no lock-taking Python code.
            preexec_fn=self._preexec,
        )
        log.close()
        self.children.append((name, child))
        with (self.run_dir / "pids").open("a") as pids:
            pids.write(f"{_identity(child.pid)}\n")
        return child

    def check_alive(self) -> None:
        for name, child in self.children:
            if child.poll() is not None:
                tail = (self.run_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {child.returncode}:\n{tail}")

    def stop_all(self) -> list[str]:
        """Stop the processes in reverse start order, each waited for before the next.

        The controller manager first, then the API server while its etcd still answers (it
        would otherwise retry etcd until its SIGKILL), then etcd. SIGTERM to the process
        group, SIGKILL after STOP_TIMEOUT seconds. Returns what was stopped, one entry each.
        """
        stopped: list[str] = []
        for name, child in reversed(self.children):
            if child.poll() is not None:
                stopped.append(f"{name} (had exited with {child.returncode})")
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=STOP_TIMEOUT)
                stopped.append(name)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                stopped.append(f"{name} (SIGKILL after {STOP_TIMEOUT:.0f} s)")
        return stopped


@contextlib.contextmanager
def control_plane(bin_dir: Path | None = None) -> Iterator[ControlPlane]:
    """Start etcd, kube-apiserver and kube-controller-manager; stop them on exit.

    Yields once the API server answers ``/readyz`` and the controller manager has created
    the ``default`` ServiceAccount (so its controllers run). Raises RuntimeError with the log
    tail when a process dies or does not get ready within READY_TIMEOUT seconds; raises
    :class:`Terminated` on SIGTERM or SIGHUP (main thread). Whatever ends it, the processes
    are stopped and one line on stderr says which and how long it took.
    """
    # Absolute: the processes run with the run directory as their working directory.
    bin_dir = (bin_dir or build()).resolve()
    remove_leftovers()
    run_dir = _new_run_dir()
    sa_private, sa_public, token = _write_credentials(run_dir)
    etcd_client, etcd_peer, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = run_dir / "kubeconfig"
    _write_kubeconfig(kubeconfig, server, token)

    processes = _Processes(run_dir)
    ended_by = "exit"
    with _Signals() as signals:
        try:
            processes.start(
                "etcd",
                [
                    str(bin_dir / "etcd"),
                    "--name=test",
                    f"--data-dir={run_dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-cluster=test=http://127.0.0.1:{etcd_peer}",
                    "--log-level=warn",
                    # Throwaway data on a shared disk: durability buys nothing here.
                    "--unsafe-no-fsync",
                ],
            )
            processes.start(
                "kube-apiserver",
                [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={api_port}",
                    f"--advertise-address={advertise_address()}",
                    f"--cert-dir={run_dir / 'certs'}",
                    f"--token-auth-file={run_dir / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={sa_public}",
                    f"--service-account-signing-key-file={sa_private}",
                    # Privileged pods are allowed by the server itself, so that a refusal can
                    # only come from Pod Security admission (the namespace's label).
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
            )
            processes.start(
                "kube-controller-manager",
                [
                    str(bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    f"--service-account-private-key-file={sa_private}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                ],
            )
            plane = ControlPlane(kubeconfig, bin_dir / "kubectl", bin_dir, run_dir, server)
            _wait_ready(plane, processes)
            yield plane
        except Terminated as signalled:
            ended_by = str(signalled)
            raise
        except KeyboardInterrupt:
            ended_by = "SIGINT"
            raise
        except BaseException as error:
            ended_by = type(error).__name__
            raise
        finally:
            signals.stopping = True
            if ended_by == "exit" and signals.raised is not None:
                ended_by = signal.Signals(signals.raised).name
            started = time.monotonic()
            stopped = processes.stop_all()
            print(
                f"control plane stopped ({ended_by}): {', '.join(stopped) or 'nothing started'}"
                f" in {time.monotonic() - started:.1f} s; logs in {run_dir}",
                file=sys.stderr,
                flush=True,
            )
    if signals.arrived and ended_by == "exit":
        # A stop signal during a normal stop: deliver it now, to the handler it was meant for.
        signal.raise_signal(signals.arrived[0])


def _wait_ready(plane: ControlPlane, processes: _Processes) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        processes.check_alive()
        ready = plane.kubectl("get", "--raw", "/readyz", timeout=10)
        if ready.returncode == 0:
            account = plane.kubectl("-n", "default", "get", "serviceaccount", "default", timeout=10)
            if account.returncode == 0:
                return
            last = account.stderr
        else:
            last = ready.stderr
        time.sleep(1)
    raise RuntimeError(f"control plane not ready after {READY_TIMEOUT:.0f} s: {last}")


def main() -> int:
    """Run one control plane until Ctrl-C, SIGTERM or SIGHUP; the exit status is 128 + signal."""
    try:
        with control_plane() as running:
            print(f"export KUBECONFIG={running.kubeconfig}")
            print(f"export PATH={running.bin_dir}:$PATH")
            print(f"# data and logs: {running.run_dir}")
            print("Ctrl-C stops it.", flush=True)
            while True:
                signal.pause()
    except Terminated as signalled:
        return 128 + signalled.signum
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
