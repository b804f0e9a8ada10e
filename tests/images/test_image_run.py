"""Each image run as Kubernetes runs it: the restricted securityContext of deploy/k8s/base, for real.

For every deployable the test reads the pod and container ``securityContext`` and the
``/tmp`` emptyDir of its workloads in ``deploy/k8s/base`` (so this run and the manifests
cannot drift apart), maps them to engine flags (``--user``, ``--read-only`` without podman's
extra tmpfs mounts, ``--cap-drop``, ``--security-opt no-new-privileges``, ``--tmpfs /tmp``),
and runs the image with ``--network host`` against the local infrastructure, a fresh
database per test, on ports the kernel picks free for each test (so two checkouts can run
these tests at once):

- ``migrate`` exits 0;
- ``api`` (and ``worker``) become ready on ports of their own, serve one real request, then
  stop on SIGTERM (``<engine> stop``) with exit 0 and every shutdown step logged;
- the process is uid/gid 10001 with no capabilities, ``no_new_privs`` set, a read-only root
  and a writable /tmp (read from the kernel's view of it, ``/proc/<pid>``).

Two more checks per image need no infrastructure: no build tool is left in it (no compiler,
no ``make``, no uv; no pip in the application's environment: the official Python base's own
pip stays, it is part of that base and deleting it in a later layer would shrink nothing),
and its size stays under a budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.images.build import (
    BASE_NAME_LABEL,
    Built,
    dockerfile_defaults,
    image_label,
    select_bases,
)
from deploy.images.engine import Engine, sigint_deferred
from tests.deploy.artifacts import IMAGES, K8S, image_deployable, is_app_image
from tests.support.infra import Infra, provide_infra

# The first test pays for a cold build of every image and the stand-in bases (minutes on 2
# cores) inside its fixture, which pytest-timeout counts: the suite's 300 s is too short for it.
pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]


#: Size budget per image, in MB (uncompressed, as `<engine> images` shows it). Measured with
#: the stand-in Python base (155 MB of it) on 2026-11-30: member, board, qna and saga 297,
#: gateway 310, web 333, loadgen 213; each budget leaves about 10 % for growth.
SIZE_BUDGET_MB = {
    "member": 330,
    "board": 330,
    "qna": 330,
    "saga": 330,
    "gateway": 340,
    "web": 365,
    "loadgen": 240,
}

#: What counts as a build tool left in an image (see the module docstring).
BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "make", "uv", "uvx")


# ------------------------------------------------------------------ the restricted profile


@dataclass(frozen=True)
class Profile:
    """The parts of a pod's security settings that an engine can apply, from the manifests."""

    user: int
    group: int
    read_only_root: bool
    drop: tuple[str, ...]
    no_new_privileges: bool
    tmp_size: str  # the /tmp emptyDir's sizeLimit, e.g. "64Mi"

    def flags(self) -> list[str]:
        flags = [f"--user={self.user}:{self.group}", "--tmpfs", f"/tmp:rw,size={self.tmp_bytes()}"]
        if self.read_only_root:
            # podman adds tmpfs mounts on /tmp, /var/tmp and /run to a read-only container;
            # Kubernetes does not, so neither does this run.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        flags += [f"--cap-drop={cap}" for cap in self.drop]
        if self.no_new_privileges:
            flags += ["--security-opt", "no-new-privileges"]
        return flags

    def tmp_bytes(self) -> int:
        number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", self.tmp_size).groups()  # type: ignore[union-attr]
        return int(number) * {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, None: 1}[unit]


def base_workloads() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((K8S / "base").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return [d for d in docs if d.get("kind") in ("Deployment", "StatefulSet", "Job")]


def restricted_profile(deployable: str) -> Profile:
    """The one profile every base workload running ``deployable``'s image shares (the test
    fails if two of them differ: then the run below could not stand for all of them)."""
    profiles = set()
    for workload in base_workloads():
        pod = workload["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            image = container["image"]
            if not is_app_image(image) or image_deployable(image) != deployable:
                continue
            pod_ctx, ctx = pod.get("securityContext", {}), container.get("securityContext", {})
            both = {**pod_ctx, **ctx}
            assert both.get("runAsNonRoot") is True, workload["metadata"]["name"]
            tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
            volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
            profiles.add(
                Profile(
                    user=int(both["runAsUser"]),
                    group=int(both["runAsGroup"]),
                    read_only_root=bool(ctx.get("readOnlyRootFilesystem")),
                    drop=tuple(ctx.get("capabilities", {}).get("drop", [])),
                    no_new_privileges=ctx.get("allowPrivilegeEscalation") is False,
                    tmp_size=str(volume["emptyDir"]["sizeLimit"]),
                )
            )
    assert len(profiles) == 1, f"{deployable}: base workloads differ: {profiles}"
    return profiles.pop()


def test_every_image_has_one_restricted_profile_in_the_manifests() -> None:
    """The profile the runs below use: non-root 10001, read-only root, no capabilities, no
    privilege escalation, a /tmp emptyDir; the same for every workload of an image."""
    for deployable in IMAGES:
        profile = restricted_profile(deployable)
        assert (profile.user, profile.group) == (10001, 10001)
        assert profile.read_only_root
        assert profile.no_new_privileges
        assert profile.drop == ("ALL",)


# ------------------------------------------------------------------ containers


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that nothing listens on now, on every address (the
    containers run with the host's network and listen on 0.0.0.0), picked by the kernel.

    Fixed ports would collide with a second checkout running these tests at the same time.
    The sockets are held until all are picked, so the ports differ; another process could
    still take one before the container binds it, which the kernel makes unlikely (it
    hands out ephemeral ports in turn, not the ones just released first)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("0.0.0.0", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@dataclass(frozen=True)
class Ports:
    """One test's ports: the api's, the worker's, the stand-in upstream's, and one that
    nothing listens on (the JWKS URL of a service whose member is not running)."""

    http: int
    worker: int
    upstream: int
    idle: int


@pytest.fixture
def ports() -> Ports:
    return Ports(*free_ports(4))


def test_free_ports_are_distinct_and_nothing_listens_on_them() -> None:
    picked = free_ports(4)
    assert len(set(picked)) == 4
    for port in picked:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("0.0.0.0", port))


@dataclass
class Container:
    engine: Engine
    name: str

    def logs(self) -> str:
        done = self.engine.run("logs", self.name, check=False)
        return done.stdout + done.stderr

    def state(self) -> dict[str, Any]:
        out = self.engine.run("inspect", "--format", "{{json .State}}", self.name).stdout
        state: dict[str, Any] = json.loads(out)
        return state

    def stop(self, timeout: int = 40) -> int:
        """SIGTERM (the image's stop signal), SIGKILL after ``timeout``; the exit code."""
        self.engine.run("stop", "-t", str(timeout), self.name, timeout=timeout + 30)
        return int(self.state()["ExitCode"])

    def wait_ready(self, port: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.state().get("Running"):
                raise AssertionError(f"{self.name} exited:\n{self.logs()[-4000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.name} not ready on :{port}:\n{self.logs()[-4000:]}")


def run_args(profile: Profile, env: dict[str, str], mounts: list[str]) -> list[str]:
    args = [*profile.flags(), "--network=host", *mounts]
    for key, value in sorted(env.items()):
        args += ["--env", f"{key}={value}"]
    return args


@pytest.fixture
def containers(engine: Engine) -> Iterator[list[Container]]:
    """The containers a test starts, removed afterwards; a Ctrl-C during the removal does
    not cut it short (SIGINT deferred, each ``rm`` in a session of its own)."""
    started: list[Container] = []
    yield started
    with sigint_deferred():
        for container in started:
            engine.run("rm", "-f", "-t", "0", container.name, check=False, shielded=True)


def start(
    engine: Engine,
    started: list[Container],
    built: Built,
    argv: list[str],
    env: dict[str, str],
    mounts: list[str],
) -> Container:
    name = f"msa-image-test-{built.name}-{argv[0]}-{uuid.uuid4().hex[:6]}"
    profile = restricted_profile(built.name)
    engine.run("run", "-d", "--name", name, *run_args(profile, env, mounts), built.ref, *argv)
    container = Container(engine, name)
    started.append(container)
    return container


def run_to_completion(
    engine: Engine,
    started: list[Container],
    built: Built,
    argv: list[str],
    env: dict[str, str],
    mounts: list[str],
) -> tuple[int, str]:
    """``run --rm`` in the foreground; named and listed in ``started`` so that the clean-up
    removes it too when the test is interrupted while it runs."""
    name = f"msa-image-test-{built.name}-{argv[0]}-{uuid.uuid4().hex[:6]}"
    started.append(Container(engine, name))
    profile = restricted_profile(built.name)
    done = engine.run(
        "run", "--rm", "--name", name, *run_args(profile, env, mounts), built.ref, *argv,
        check=False, timeout=300,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


# ------------------------------------------------------------------ what each process proves


def assert_restricted(engine: Engine, container: Container, profile: Profile) -> None:
    """The kernel's view of the running process: ids, capabilities, no_new_privs, mounts."""
    pid = int(container.state()["Pid"])
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split() == [str(profile.user)] * 4, fields["Uid"]
    assert fields["Gid"].split() == [str(profile.group)] * 4, fields["Gid"]
    assert int(fields["CapEff"], 16) == 0, fields["CapEff"]
    assert int(fields["CapBnd"], 16) == 0, fields["CapBnd"]
    assert fields["NoNewPrivs"].strip() == "1"
    mounts = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        mounts[parts[4]] = parts[5].split(",")
    assert "ro" in mounts["/"], mounts["/"]
    assert "rw" in mounts["/tmp"], mounts.get("/tmp")
    writable = [
        m
        for m, opts in mounts.items()
        if "rw" in opts and not m.startswith(("/proc", "/sys", "/dev"))
    ]
    assert sorted(writable) == ["/tmp"], f"writable besides /tmp: {writable}"


def assert_clean_shutdown(container: Container, *, worker: bool) -> None:
    code = container.stop()
    logs = container.logs()
    assert code == 0, f"{container.name} exited {code} on SIGTERM:\n{logs[-4000:]}"
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    steps = [e["step"] for e in events if e.get("event") == "shutdown.step"]
    assert steps[:1] == [1], steps
    assert steps[-1:] == [6], steps
    # A worker stops its consumers and relay (3, 4); an api drains its requests (2). Both close pools.
    assert ({3, 4, 5} if worker else {2, 5}) <= set(steps), steps


@dataclass
class Upstream:
    """A stand-in upstream for the gateway and web: answers every GET with an empty JSON list."""

    port: int
    paths: list[str]


@pytest.fixture
def upstream(ports: Ports) -> Iterator[Upstream]:
    seen = Upstream(ports.upstream, [])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.paths.append(self.path)
            body = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", ports.upstream), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def infra() -> Iterator[Infra]:
    with provide_infra() as found:
        yield found


@pytest.fixture
def database(infra: Infra) -> Iterator[str]:
    url = asyncio.run(infra.create_database("img"))
    yield url
    asyncio.run(infra.drop_database(url))


def common_env(infra: Infra, deployable: str, ports: Ports) -> dict[str, str]:
    prefix = f"img{uuid.uuid4().hex[:8]}."
    # Member publishes the keys itself; elsewhere no member runs, as before a deployment's
    # member is up.
    jwks_port = ports.http if deployable == "member" else ports.idle
    return {
        "SERVICE_NAME": deployable,
        "HTTP_PORT": str(ports.http),
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "REDIS_URL": infra.redis_url,
        "JWKS_URL": f"http://127.0.0.1:{jwks_port}/.well-known/jwks.json",
        "JWT_ISSUER": "msa-member",
        "JWT_AUDIENCE": "msa",
        "SHUTDOWN_DRAIN_SECONDS": "0.2",
        "LOG_LEVEL": "INFO",
    }


# ------------------------------------------------------------------ the tests

SERVICES = ("member", "board", "qna", "saga")
#: One real request per service: (path, expected status).
REQUESTS = {
    "member": ("/.well-known/jwks.json", 200),
    "board": ("/api/boards", 200),
    "qna": ("/api/questions", 200),
    # Every saga endpoint needs a member's token: a refusal as problem+json is the answer.
    "saga": (f"/api/sagas/{uuid.UUID(int=1)}", 401),
}


@pytest.mark.parametrize("deployable", SERVICES)
def test_a_service_image_migrates_serves_and_stops_cleanly_under_the_restricted_profile(
    deployable: str,
    engine: Engine,
    images: dict[str, Built],
    infra: Infra,
    database: str,
    containers: list[Container],
    ports: Ports,
    tmp_path: Path,
) -> None:
    built, profile = images[deployable], restricted_profile(deployable)
    env = {**common_env(infra, deployable, ports), "DATABASE_URL": database}
    env["WORKER_PORT"] = str(ports.worker)
    mounts: list[str] = []
    if deployable == "member":
        # The signing key as Kubernetes mounts the member-jwt Secret: read-only, readable by
        # the pod's group (fsGroup).
        keys = tmp_path / "jwt"
        keys.mkdir()
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (keys / "jwt-private-key.pem").write_bytes(pem)
        os.chmod(keys / "jwt-private-key.pem", 0o644)
        mounts = ["--volume", f"{keys}:/etc/member/jwt:ro"]
        env["JWT_PRIVATE_KEY_FILE"] = "/etc/member/jwt/jwt-private-key.pem"
        env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"] = "admin@example.com", "admin-image-test-pw"
    if deployable == "saga":
        env["QNA_URL"] = f"http://127.0.0.1:{ports.idle}"

    code, output = run_to_completion(engine, containers, built, ["migrate"], env, mounts)
    assert code == 0, f"{deployable} migrate exited {code}:\n{output[-4000:]}"

    api = start(engine, containers, built, ["api"], env, mounts)
    worker = start(engine, containers, built, ["worker"], env, mounts)
    api.wait_ready(ports.http)
    worker.wait_ready(ports.worker)

    path, status = REQUESTS[deployable]
    response = httpx.get(f"http://127.0.0.1:{ports.http}{path}", timeout=10)
    assert response.status_code == status, response.text
    if deployable == "member":
        assert response.json()["keys"], "the mounted signing key is published"

    assert_restricted(engine, api, profile)
    assert_restricted(engine, worker, profile)
    assert_clean_shutdown(api, worker=False)
    assert_clean_shutdown(worker, worker=True)


@pytest.mark.parametrize("deployable", ["gateway", "web"])
def test_the_gateway_and_web_images_serve_and_stop_cleanly_under_the_restricted_profile(
    deployable: str,
    engine: Engine,
    images: dict[str, Built],
    infra: Infra,
    containers: list[Container],
    ports: Ports,
    upstream: Upstream,
) -> None:
    built, profile = images[deployable], restricted_profile(deployable)
    there = f"http://127.0.0.1:{upstream.port}"
    env = common_env(infra, deployable, ports)
    env.update(MEMBER_URL=there, BOARD_URL=there, QNA_URL=there, SAGA_URL=there, WEB_URL=there)
    # Keys of its own in the shared Redis: a `make run` on the machine counts 127.0.0.1's
    # requests under the default prefix, and its gateway would rate-limit this one's.
    own = f"img{uuid.uuid4().hex[:8]}:"
    env.update(
        GATEWAY_URL=there, WEB_REDIS_KEY_PREFIX=own, RATE_LIMIT_KEY_PREFIX=f"{own}ratelimit:"
    )
    api = start(engine, containers, built, ["api"], env, [])
    api.wait_ready(ports.http)

    base = f"http://127.0.0.1:{ports.http}"
    if deployable == "gateway":
        # Proxied to "board" (the stand-in upstream) through the gateway's whole pipeline.
        response = httpx.get(f"{base}/api/boards", timeout=10)
        assert response.status_code == 200, response.text
        assert any(p.startswith("/api/boards") for p in upstream.paths), upstream.paths
    else:
        # A file shipped in the image beside the package (web/src/web/static).
        response = httpx.get(f"{base}/static/app.css", timeout=10)
        assert response.status_code == 200, response.text
        assert response.text.strip()

    assert_restricted(engine, api, profile)
    assert_clean_shutdown(api, worker=False)


@pytest.mark.parametrize("name", [*IMAGES, "loadgen"])
def test_no_build_tool_is_left_in_the_image(
    name: str, engine: Engine, images: dict[str, Built]
) -> None:
    script = (
        "import pathlib, re, shutil, sys; "
        f"tools = {BUILD_TOOLS!r}; "
        "found = [t for t in tools if shutil.which(t)]; "
        "venv = pathlib.Path('/app/.venv/bin'); "
        "found += [str(p) for p in venv.iterdir() if re.fullmatch(r'(pip|uv)[0-9.]*|uvx', p.name)]; "
        "print(found); sys.exit(1 if found else 0)"
    )
    done = engine.run(
        "run", "--rm", "--entrypoint", "python", images[name].ref, "-c", script, check=False
    )
    assert done.returncode == 0, f"{name}: build tools in the image: {done.stdout}{done.stderr}"


@pytest.mark.parametrize("name", [*IMAGES, "loadgen"])
def test_the_image_stays_within_its_size_budget(name: str, images: dict[str, Built]) -> None:
    size_mb = images[name].size_bytes / 1e6
    print(f"{images[name].ref}: {size_mb:.0f} MB (budget {SIZE_BUDGET_MB[name]} MB)")
    assert size_mb <= SIZE_BUDGET_MB[name], f"{name}: {size_mb:.0f} MB"


def test_the_base_name_label_names_the_base_the_image_was_built_on(
    engine: Engine, images: dict[str, Built]
) -> None:
    """OCI ``base.name``: the official Python image only when it was the base; a stand-in's
    own name when the build used one (deploy/images/standins.py)."""
    python = select_bases(engine, say=False).get("PYTHON_IMAGE")
    expected = python or f"docker.io/library/{dockerfile_defaults()['PYTHON_IMAGE']}"
    for name, built in images.items():
        assert image_label(engine, built.ref, BASE_NAME_LABEL) == expected, name
