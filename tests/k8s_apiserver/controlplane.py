"""A throwaway Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

No kubelet and no scheduler: the controllers turn Deployments, StatefulSets and Jobs into pods,
Pod Security admission judges those pods, and they stay Pending. That is enough to see what an
API server and its controllers do with deploy/k8s (admission, defaulting and normalisation,
immutable fields, server-side apply ownership), not whether the images run (tests/images).

The binaries come from ``deploy/k8s/apiserver/build.sh`` (built once, cached under
``.local/k8s/``). Data and logs live in ``.local/k8s/run/`` (wiped at the next start, so the
logs of a failed run stay to read). Each process runs in its own process group and is stopped,
whatever happened, when the ``control_plane()`` context exits.

Run ``python -m tests.k8s_apiserver.controlplane`` to get one to play with: it prints the
KUBECONFIG to export and runs until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "k8s" / "apiserver" / "build.sh"
RUN_DIR = ROOT / ".local" / "k8s" / "run"
# The service network the API server allocates ClusterIPs from (never routed: no kube-proxy).
SERVICE_CIDR = "10.96.0.0/16"
# Seconds: a cold start on a loaded 2-core machine takes about 20 s.
READY_TIMEOUT = 180.0


def go_binary() -> str | None:
    """The go command build.sh will use, or None when this machine has no Go."""
    default = Path("/usr/local/go/bin/go")
    return str(default) if default.exists() else shutil.which("go")


def build() -> Path:
    """Build (or reuse) the binaries; returns their directory. Raises CalledProcessError."""
    done = subprocess.run(
        ["bash", str(BUILD)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, BUILD, done.stdout, done.stderr)
    return Path(done.stdout.strip().splitlines()[-1])


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


def _stop_leftovers(bin_dir: Path) -> None:
    """Stop the process groups a previous run left behind (its runner was SIGKILLed).

    Only groups recorded in RUN_DIR/pids whose leader still runs one of our binaries, so a
    recycled pid of some other process is never touched.
    """
    with contextlib.suppress(OSError):
        for pid in map(int, (RUN_DIR / "pids").read_text().split()):
            with contextlib.suppress(OSError):
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                if argv0.startswith(str(bin_dir).encode()):
                    os.killpg(pid, signal.SIGKILL)


class _Processes:
    """Child processes, each in its own process group, stopped in reverse order."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.run_dir / f"{name}.log").open("wb")
        child = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.run_dir
        )
        log.close()
        self.children.append((name, child))
        with (self.run_dir / "pids").open("a") as pids:
            pids.write(f"{child.pid}\n")
        return child

    def check_alive(self) -> None:
        for name, child in self.children:
            if child.poll() is not None:
                tail = (self.run_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {child.returncode}:\n{tail}")

    def stop_all(self) -> None:
        for _name, child in reversed(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, child in reversed(self.children):
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()


@contextlib.contextmanager
def control_plane(bin_dir: Path | None = None) -> Iterator[ControlPlane]:
    """Start etcd, kube-apiserver and kube-controller-manager; stop them on exit.

    Yields once the API server answers ``/readyz`` and the controller manager has created
    the ``default`` ServiceAccount (so its controllers run). Raises RuntimeError with the log
    tail when a process dies or does not get ready within READY_TIMEOUT seconds.
    """
    bin_dir = bin_dir or build()
    _stop_leftovers(bin_dir)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    sa_private, sa_public, token = _write_credentials(RUN_DIR)
    etcd_client, etcd_peer, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = RUN_DIR / "kubeconfig"
    _write_kubeconfig(kubeconfig, server, token)

    processes = _Processes(RUN_DIR)
    try:
        processes.start(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=test",
                f"--data-dir={RUN_DIR / 'etcd'}",
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
                f"--cert-dir={RUN_DIR / 'certs'}",
                f"--token-auth-file={RUN_DIR / 'tokens.csv'}",
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
        plane = ControlPlane(kubeconfig, bin_dir / "kubectl", bin_dir, RUN_DIR, server)
        _wait_ready(plane, processes)
        yield plane
    finally:
        processes.stop_all()


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


if __name__ == "__main__":
    with control_plane() as running:
        print(f"export KUBECONFIG={running.kubeconfig}")
        print(f"export PATH={running.bin_dir}:$PATH")
        print("Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
