"""Deployment artefacts as data: rendered manifests, the compose model and the conventions."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONVENTIONS = ROOT / "docs" / "CONVENTIONS.md"
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "production")
NAMESPACE = "msa-board"

Manifest = dict[str, Any]

# The deployables, where their code lives, and the image each one builds.
DEPLOYABLE_DIRS: dict[str, str] = {
    "member": "services/member",
    "board": "services/board",
    "qna": "services/qna",
    "saga": "saga",
    "gateway": "gateway",
    "web": "web",
    "chassis": "libs/chassis",
}
IMAGES = ("member", "board", "qna", "saga", "gateway", "web")
IMAGE_REPOSITORY = "ghcr.io/example/msa-board"
SERVICES_WITH_DATABASE = ("member", "board", "qna", "saga")
# Deployables with one long-running process, named after the deployable itself (compose
# service, Kubernetes Deployment and Service `gateway`, `web`) rather than `<svc>-api`.
SINGLE_PROCESS = ("gateway", "web")


def api_process(deployable: str) -> str:
    """The name of the process serving a deployable's HTTP port: `gateway`, `web`, `<svc>-api`."""
    return deployable if deployable in SINGLE_PROCESS else f"{deployable}-api"


# ------------------------------------------------------------------ docs/CONVENTIONS.md


def _section(title: str) -> list[str]:
    lines = CONVENTIONS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## {title}"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1 : end]


def _table_rows(title: str) -> list[list[str]]:
    rows = []
    for line in _section(title):
        if not line.startswith("|") or set(line) <= {"|", "-", " "}:
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header row


@cache
def conventions_commands() -> dict[str, tuple[tuple[str, ...], ...]]:
    """The command table: deployable -> its commands, e.g. ("member", "api")."""
    table: dict[str, tuple[tuple[str, ...], ...]] = {}
    for cells in _table_rows("Command line"):
        deployable = cells[0].split()[0]
        commands = tuple(tuple(cmd.split()) for cmd in re.findall(r"`([^`]+)`", cells[1]))
        table[deployable] = commands
    return table


def subcommands(deployable: str) -> set[str]:
    """First-level CLI words of a deployable (api, worker, migrate, topics ...)."""
    return {cmd[1] for cmd in conventions_commands()[deployable]}


def is_convention_command(deployable: str, argv: list[str]) -> bool:
    """Whether argv is one of the deployable's documented commands (placeholders match any)."""
    for cmd in conventions_commands()[deployable]:
        if len(cmd) == len(argv) and all(
            want == got or want.startswith("<") for want, got in zip(cmd, argv, strict=True)
        ):
            return True
    return False


@cache
def conventions_ports() -> dict[str, tuple[int, int | None]]:
    """process -> (HTTP port, worker port or None)."""
    ports: dict[str, tuple[int, int | None]] = {}
    for cells in _table_rows("Ports"):
        worker = cells[2].strip()
        ports[cells[0]] = (int(cells[1]), int(worker) if worker.isdigit() else None)
    return ports


@cache
def conventions_env_vars() -> frozenset[str]:
    """Every environment variable named in the conventions' environment section."""
    text = "\n".join(_section("Environment variables"))
    names = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))
    names.discard("OTEL_")
    return frozenset(names)


# ------------------------------------------------------------------ Python sources


def console_script(deployable: str) -> tuple[str, Path]:
    """(script name, module file) of the deployable's CLI, from its pyproject.toml."""
    folder = ROOT / DEPLOYABLE_DIRS[deployable]
    project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    scripts: dict[str, str] = project.get("project", {}).get("scripts", {})
    assert deployable in scripts, f"{folder}/pyproject.toml declares no `{deployable}` script"
    module = scripts[deployable].split(":")[0]
    return deployable, folder / "src" / Path(*module.split(".")).with_suffix(".py")


def workspace_members() -> list[str]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members: list[str] = root["tool"]["uv"]["workspace"]["members"]
    return members


# ------------------------------------------------------------------ Kubernetes


def run(*argv: str, timeout: float = 300) -> str:
    done = subprocess.run(
        list(argv), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stderr}\n{done.stdout}"
    return done.stdout


@cache
def rendered(overlay: str) -> tuple[Manifest, ...]:
    """`kustomize build` of an overlay, from the committed secret examples only."""
    out = run("bash", "deploy/k8s/validate.sh", "render", overlay)
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


@cache
def apply_tool() -> ModuleType:
    """deploy/k8s/apply.py as a module (a script, not a package), for its pure functions."""
    spec = importlib.util.spec_from_file_location("k8s_apply", K8S / "apply.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def of_kind(docs: tuple[Manifest, ...], *kinds: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] in kinds]


def by_name(docs: tuple[Manifest, ...], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in of_kind(docs, kind)}


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def workloads(docs: tuple[Manifest, ...]) -> list[Manifest]:
    return of_kind(docs, *WORKLOAD_KINDS)


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    found: list[dict[str, Any]] = spec.get("initContainers", []) + spec["containers"]
    return found


def is_app_image(image: str) -> bool:
    return image.startswith(f"{IMAGE_REPOSITORY}/")


def image_deployable(image: str) -> str:
    """ghcr.io/example/msa-board/member:0.1.0 -> member."""
    return image.removeprefix(f"{IMAGE_REPOSITORY}/").split(":")[0]


def container_argv(container: Mapping[str, Any]) -> list[str]:
    """The command line a container runs, with the image's ENTRYPOINT when not overridden."""
    image = container["image"]
    entrypoint = container.get("command") or [image_deployable(image)]
    return [*entrypoint, *container.get("args", [])]


def effective_replicas(docs: tuple[Manifest, ...], workload: Manifest) -> int:
    """spec.replicas, or the autoscaler's minimum when an HPA owns the count."""
    name = workload["metadata"]["name"]
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] == workload["kind"] and target["name"] == name:
            return max(
                int(hpa["spec"].get("minReplicas", 1)), int(workload["spec"].get("replicas", 1))
            )
    replicas: int = workload["spec"].get("replicas", 1)
    return replicas


def configmap_env(docs: tuple[Manifest, ...], container: Mapping[str, Any]) -> dict[str, str]:
    """The environment a container gets from its ConfigMaps and plain `value` entries."""
    maps = by_name(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]].get("data", {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
    return env


def secret_values(secret: Manifest) -> dict[str, str]:
    data: dict[str, str] = secret.get("data", {})
    values = {k: base64.b64decode(v).decode("utf-8") for k, v in data.items()}
    values.update(secret.get("stringData", {}))
    return values


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


# ------------------------------------------------------------------ NetworkPolicy semantics


@dataclass(frozen=True)
class Endpoint:
    """A pod (or any pod of a namespace) as a NetworkPolicy sees it."""

    labels: Mapping[str, str]
    namespace: str = NAMESPACE
    namespace_labels: Mapping[str, str] = field(default_factory=dict)

    def ns_labels(self) -> Mapping[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def _peer_matches(peer: Mapping[str, Any], other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], other.ns_labels()):
            return False
    elif other.namespace != NAMESPACE:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], other.labels)


def _rule_allows(rule: Mapping[str, Any], peers_key: str, other: Endpoint, port: int) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port for p in ports):
        return False
    peers = rule.get(peers_key)
    return not peers or any(_peer_matches(peer, other) for peer in peers)


def _direction_allows(
    policies: list[Manifest], pod: Endpoint, direction: str, other: Endpoint, port: int
) -> bool:
    if pod.namespace != NAMESPACE:
        return True  # no policies of ours apply outside the namespace
    selecting = [
        p
        for p in policies
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and selector_matches(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    return any(
        _rule_allows(rule, peers_key, other, port)
        for p in selecting
        for rule in p["spec"].get(key) or []
    )


def connection_allowed(docs: tuple[Manifest, ...], src: Endpoint, dst: Endpoint, port: int) -> bool:
    """Whether src may open a TCP connection to dst:port under every NetworkPolicy."""
    policies = of_kind(docs, "NetworkPolicy")
    return _direction_allows(policies, src, "Egress", dst, port) and _direction_allows(
        policies, dst, "Ingress", src, port
    )


def ingress_allowed(docs: tuple[Manifest, ...], src: Endpoint, dst: Endpoint, port: int) -> bool:
    """Whether dst's own policies admit src on port, whatever src's egress rules say."""
    return _direction_allows(of_kind(docs, "NetworkPolicy"), dst, "Ingress", src, port)


def endpoint(docs: tuple[Manifest, ...], workload_name: str) -> Endpoint:
    for workload in workloads(docs):
        if workload["metadata"]["name"] == workload_name:
            return Endpoint(pod_labels(workload))
    raise AssertionError(f"no workload named {workload_name}")


# ------------------------------------------------------------------ compose and Dockerfiles


@cache
def compose_project(env_file: str | None = ".env.example", profiles: str = "*") -> Manifest:
    """docker-compose.yml as compose-go (the library of `docker compose`) resolves it."""
    argv = ["bash", "deploy/compose-check/compose-check.sh", "-profiles", profiles]
    if env_file:
        argv += ["-env-file", env_file]
    project: Manifest = json.loads(run(*argv, "docker-compose.yml"))
    return project


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, value = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip()))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def dockerfile_args(instructions: list[Instruction]) -> dict[str, str]:
    """Default values of the ARGs declared before the first FROM."""
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG" and "=" in ins.value:
            key, _, value = ins.value.partition("=")
            args[key] = value
    return args


def env_assignments(value: str) -> Iterator[tuple[str, str]]:
    """KEY=VALUE pairs of an ENV or LABEL instruction (quotes removed)."""
    for match in re.finditer(r'([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)', value):
        yield match.group(1), match.group(2).strip('"')
