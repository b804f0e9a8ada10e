"""Deploy/k8s against a real API server: admission, idempotent re-apply, config and overlay moves.

What the offline checks (tests/deploy, ``make k8s-validate``) cannot see: what the API server
and its controllers do with the manifests. For each overlay, on a fresh namespace, through the
rollout a platform team runs (``deploy/k8s/apply.py``, server-side apply):

- the first apply is accepted with no error and no warning;
- every Deployment, StatefulSet and Job gets pods that Pod Security admission (``restricted``)
  admits: no ``FailedCreate``;
- a second apply changes nothing: ``kubectl diff --server-side`` is empty and no object's
  generation or (status-less object's) resourceVersion moves. A manifest field the server
  rewrites (``egress: []`` on a NetworkPolicy) fails here;
- a config change (a ConfigMap literal edited, the overlay re-rendered) rolls out cleanly,
  the Jobs re-created with the new config. A Job the rollout cannot replace (its immutable
  pod template) fails here;
- a second field manager (kubectl's default, a GitOps controller) applying the same objects
  meets no conflict, and the live objects equal the manifests on every field they set: a
  field the server rewrites (``fieldRef`` without ``apiVersion``, ``cpu: 1``, a bare
  volumeClaimTemplate, wrapped Secret data) fails here;
- ``apply.py --diff`` previews a config change (the Jobs "would be replaced") and changes
  nothing;
- moving to the other overlay's settings rolls out cleanly, with admitted pods, and
  ``--prune`` removes what the other overlay no longer renders (local -> production: the
  in-cluster StatefulSets), keeping their volumes.

An install made with client-side ``kubectl apply`` moves to apply.py with
``--force-conflicts``, after apply.py explained the conflicts. And Pod Security admission
really refuses a privileged container, and apply.py refuses the Deployment the server only
warns about, so the checks can fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.artifacts import apply_tool
from tests.k8s_apiserver.controlplane import ROOT, ControlPlane

# The first test also waits for the binaries: a cold build takes minutes (make builds them first).
pytestmark = [pytest.mark.k8s_apiserver, pytest.mark.timeout(1800)]

K8S = ROOT / "deploy" / "k8s"
APPLY = K8S / "apply.py"
NAMESPACE = "msa-board"
OVERLAYS = ("local", "production")
OTHER = {"local": "production", "production": "local"}
FIELD_MANAGER = "msa-board"
# The manager a second party applies with: kubectl's default for --server-side.
SECOND_MANAGER = "kubectl"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
# Seconds for the controllers to create every workload's first pod on a loaded machine.
PODS_TIMEOUT = 180.0

Manifest = dict[str, Any]


# ------------------------------------------------------------------ rendering


def kustomize() -> str:
    """The pinned kustomize of ``make k8s-validate`` (installed into .local/bin if missing)."""
    done = subprocess.run(
        ["bash", str(K8S / "validate.sh"), "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def render(overlay: str, edit: Callable[[Path], None] | None = None) -> str:
    """``kustomize build`` of a scratch copy of deploy/k8s, secrets from the examples.

    ``edit`` may change the copy first (the config change a platform team would commit).
    """
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "k8s"
        shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("apiserver"))
        for secrets in copy.glob("overlays/*/secrets"):
            for real in secrets.iterdir():
                if real.suffix != ".example" and real.name != ".gitignore":
                    real.unlink()
            for example in secrets.glob("*.example"):
                shutil.copy(example, example.with_suffix(""))
        if edit is not None:
            edit(copy)
        done = subprocess.run(
            [kustomize(), "build", str(copy / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=False,
        )
    assert done.returncode == 0, f"kustomize build {overlay} failed:\n{done.stderr}"
    return done.stdout


def docs_of(manifests: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(manifests) if doc]


def change_platform_literal(copy: Path) -> None:
    """The config change: one literal of the ``platform`` ConfigMap every process reads."""
    kustomization = copy / "base" / "kustomization.yaml"
    text = kustomization.read_text()
    assert "- SHUTDOWN_TIMEOUT_SECONDS=20\n" in text
    kustomization.write_text(
        text.replace("- SHUTDOWN_TIMEOUT_SECONDS=20\n", "- SHUTDOWN_TIMEOUT_SECONDS=25\n")
    )


# ------------------------------------------------------------------ talking to the server


def stored(manifests: str) -> list[Manifest]:
    """The objects as apply.py sends them (Secret data on one line, as the server stores it)."""
    docs: list[Manifest] = apply_tool().as_stored(docs_of(manifests))
    return docs


def rollout(plane: ControlPlane, manifests: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """The documented rollout: ``deploy/k8s/apply.py -f - [flags]`` against the control plane."""
    return subprocess.run(
        [sys.executable, str(APPLY), "-f", "-", *flags],
        input=manifests,
        env=plane.env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def assert_clean(done: subprocess.CompletedProcess[str], what: str) -> None:
    """Exit 0 and no ``Warning:`` from the server (kubectl prints them on stderr)."""
    assert done.returncode == 0, f"{what} failed:\n{done.stderr}"
    warnings = [line for line in done.stderr.splitlines() if "Warning:" in line]
    assert not warnings, f"{what} drew warnings from the server:\n" + "\n".join(warnings)


def server_diff(plane: ControlPlane, manifests: str) -> subprocess.CompletedProcess[str]:
    return plane.kubectl(
        "diff", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", stdin=manifests
    )


def assert_no_diff(plane: ControlPlane, manifests: str, what: str, attempts: int = 5) -> None:
    """``kubectl diff --server-side`` is empty, within ``attempts`` tries 2 s apart.

    kubectl reads each live object, then asks for the dry-run apply: a controller that writes
    an object's status in between (a Deployment rolling, an HPA's first reading) shows up as
    a status-only difference that is nobody's manifest. That race passes on a later try; a
    field the server rewrites differs on every try, so the check still fails on it.
    """
    diff = server_diff(plane, manifests)
    for _ in range(attempts - 1):
        if diff.returncode != 1 or not diff.stdout:
            break
        time.sleep(2)
        diff = server_diff(plane, manifests)
    assert diff.returncode in (0, 1), f"{what}: kubectl diff failed:\n{diff.stderr}"
    assert not diff.stdout, (
        f"{what}: `kubectl diff --server-side` is not empty; "
        f"the server rewrites what these manifests say:\n{diff.stdout[-6000:]}"
    )
    assert diff.returncode == 0


def live(plane: ControlPlane, manifests: str) -> dict[tuple[str, str], Manifest]:
    """The live objects named by the manifests, by (kind, name)."""
    done = plane.kubectl("get", "-f", "-", "-o", "json", stdin=manifests)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    items = found.get("items", [found])
    return {(item["kind"], item["metadata"]["name"]): item for item in items}


def versions(objects: dict[tuple[str, str], Manifest]) -> dict[str, str]:
    """What must not move when an apply changes nothing.

    The uid (a re-created object is a change: a Job re-created would run again),
    ``metadata.generation`` where the object has one (a spec change bumps it), and the
    resourceVersion of objects without ``status``: a controller may write an object's status
    at any time, nobody writes a status-less ConfigMap or NetworkPolicy but an apply. A
    workload an autoscaler scales is compared by its spec without ``replicas`` instead: the
    HPA controller raises it to ``minReplicas`` on its own schedule.
    """
    scaled = {
        (obj["spec"]["scaleTargetRef"]["kind"], obj["spec"]["scaleTargetRef"]["name"])
        for (kind, _), obj in objects.items()
        if kind == "HorizontalPodAutoscaler"
    }
    out = {}
    for (kind, name), obj in objects.items():
        meta = obj["metadata"]
        out[f"{kind}/{name} uid"] = meta["uid"]
        if (kind, name) in scaled:
            spec = {k: v for k, v in obj["spec"].items() if k != "replicas"}
            out[f"{kind}/{name} spec"] = json.dumps(spec, sort_keys=True)
        elif "generation" in meta:
            out[f"{kind}/{name} generation"] = str(meta["generation"])
        if "status" not in obj:
            out[f"{kind}/{name} resourceVersion"] = meta["resourceVersion"]
    return out


def fresh_namespace(plane: ControlPlane, name: str = NAMESPACE) -> None:
    done = plane.kubectl(
        "delete", "namespace", name, "--ignore-not-found", "--wait", "--timeout=300s", timeout=330
    )
    assert done.returncode == 0, done.stderr


def _event_time(event: Manifest) -> float:
    stamp = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    if not stamp:
        return 0.0
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def admission_problems(
    plane: ControlPlane, workloads: list[Manifest], since: float, namespace: str = NAMESPACE
) -> list[str]:
    """Why some workload has no admitted pod; empty when each has at least one.

    Polls until every Deployment, StatefulSet and Job has a pod (a StatefulSet only its
    first: the next waits for it to be Ready, which needs a kubelet) or a ``FailedCreate``
    event newer than ``since`` (epoch seconds, second resolution) says why not.
    """
    deadline = time.monotonic() + PODS_TIMEOUT
    while True:
        events = json.loads(plane.kubectl("-n", namespace, "get", "events", "-o", "json").stdout)
        refused = [
            f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}: {e['message']}"
            for e in events["items"]
            if e.get("reason") == "FailedCreate" and _event_time(e) >= since - 1
        ]
        if refused:
            return refused
        pods = json.loads(plane.kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)
        labels = [pod["metadata"].get("labels", {}) for pod in pods["items"]]
        missing = [
            f"{w['kind']}/{w['metadata']['name']}"
            for w in workloads
            if not any(
                all(
                    have.get(k) == v for k, v in w["spec"]["template"]["metadata"]["labels"].items()
                )
                for have in labels
            )
        ]
        if not missing:
            return []
        if time.monotonic() > deadline:
            return [f"{name}: no pod after {PODS_TIMEOUT:.0f} s" for name in missing]
        time.sleep(1)


def workloads_of(manifests: str) -> list[Manifest]:
    return [doc for doc in docs_of(manifests) if doc["kind"] in WORKLOAD_KINDS]


# ------------------------------------------------------------------ one overlay's lifecycle


@dataclass
class Deployed:
    """An overlay rolled out on a fresh namespace: what was applied and what the rollout said."""

    overlay: str
    manifests: str
    first: subprocess.CompletedProcess[str]
    started: float


@pytest.fixture(scope="module", params=OVERLAYS)
def deployed(request: pytest.FixtureRequest, plane: ControlPlane) -> Deployed:
    overlay: str = request.param
    fresh_namespace(plane)
    manifests = render(overlay)
    started = time.time()
    return Deployed(overlay, manifests, rollout(plane, manifests), started)


def test_the_first_apply_is_accepted_without_warnings(deployed: Deployed) -> None:
    assert_clean(deployed.first, f"applying {deployed.overlay}")


def test_every_workload_gets_pods_that_pod_security_admits(
    deployed: Deployed, plane: ControlPlane
) -> None:
    assert_clean(deployed.first, f"applying {deployed.overlay}")
    (namespace,) = (d for d in docs_of(deployed.manifests) if d["kind"] == "Namespace")
    live_labels = live(plane, deployed.manifests)[("Namespace", NAMESPACE)]["metadata"]["labels"]
    assert live_labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    problems = admission_problems(plane, workloads_of(deployed.manifests), deployed.started)
    assert not problems, "pods refused or missing:\n" + "\n".join(problems)


def test_a_second_apply_changes_nothing(deployed: Deployed, plane: ControlPlane) -> None:
    """Defect 2 of issue 18: fields the server rewrites never settle (``egress: []``)."""
    assert_clean(deployed.first, f"applying {deployed.overlay}")
    assert_no_diff(plane, deployed.manifests, f"{deployed.overlay} applied once")
    before = versions(live(plane, deployed.manifests))
    assert_clean(rollout(plane, deployed.manifests), f"applying {deployed.overlay} again")
    after = versions(live(plane, deployed.manifests))
    moved = sorted(k for k in before if after.get(k) != before[k])
    assert not moved, "a second, identical apply changed: " + ", ".join(moved)


def differences(want: object, have: object, path: str = "") -> list[str]:
    """Where ``have`` differs from ``want`` on the fields ``want`` sets; [] when it does not.

    Fields only ``have`` carries (the server's defaults, status) are no difference; a list
    must match element by element.
    """
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path}: {want!r} stored as {have!r}"]
        return [
            found
            for key, value in want.items()
            for found in (
                differences(value, have[key], f"{path}.{key}")
                if key in have
                else [f"{path}.{key}: not stored"]
            )
        ]
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return [f"{path}: {want!r} stored as {have!r}"]
        return [
            found
            for i, (one, other) in enumerate(zip(want, have, strict=True))
            for found in differences(one, other, f"{path}[{i}]")
        ]
    return [] if want == have else [f"{path}: {want!r} stored as {have!r}"]


def second_manager_conflicts(plane: ControlPlane, manifests: str) -> str:
    """What a server-side dry-run apply of the same objects by another manager refuses."""
    dry = plane.kubectl(
        "apply", "--server-side", "--dry-run=server", f"--field-manager={SECOND_MANAGER}",
        "-f", "-", stdin=apply_tool().dump(stored(manifests)),
    )  # fmt: skip
    return "" if dry.returncode == 0 else dry.stderr


def test_a_second_field_manager_meets_no_conflict(deployed: Deployed, plane: ControlPlane) -> None:
    """Issue 18, finding 1: fields the server rewrites conflict for the next manager.

    The diff above runs with the manager that applied, which may change its own fields and
    so never sees them; kubectl's default manager (or a GitOps controller) applying the same
    objects did: 17 conflicts (fieldRef, cpu, volumeClaimTemplates, the JWT Secret's data).
    """
    assert_clean(deployed.first, f"applying {deployed.overlay}")
    refused = second_manager_conflicts(plane, deployed.manifests)
    assert not refused, f"another field manager applying the same objects is refused:\n{refused}"


def test_the_live_objects_equal_the_manifests(deployed: Deployed, plane: ControlPlane) -> None:
    """Every field the manifests set is stored as written (the server rewrites none of them)."""
    assert_clean(deployed.first, f"applying {deployed.overlay}")
    objects = live(plane, deployed.manifests)
    found = [
        f"{doc['kind']}/{doc['metadata']['name']}{difference}"
        for doc in stored(deployed.manifests)
        for difference in differences(doc, objects[(doc["kind"], doc["metadata"]["name"])])
    ]
    assert not found, "fields stored differently from the manifests:\n" + "\n".join(found)


def test_the_preview_shows_a_config_change_and_changes_nothing(
    deployed: Deployed, plane: ControlPlane
) -> None:
    """Issue 18, finding 4: ``apply.py --diff``, where ``kubectl diff`` stops at a changed Job.

    Exit 0 and no output when nothing would change; exit 1, the changed objects' diff and
    each changed Job "would be replaced" when a config literal changed; nothing applied.
    """
    same = rollout(plane, deployed.manifests, "--diff")
    assert same.returncode == 0, f"{same.stdout}\n{same.stderr}"
    assert not same.stdout.strip(), same.stdout
    before = versions(live(plane, deployed.manifests))

    changed = render(deployed.overlay, change_platform_literal)
    preview = rollout(plane, changed, "--diff")
    assert preview.returncode == 1, f"{preview.stdout}\n{preview.stderr}"
    replaced = {
        line.split()[3]
        for line in preview.stdout.splitlines()
        if line.startswith("would be replaced: ")
    }
    jobs = {f"job.batch/{d['metadata']['name']}" for d in docs_of(changed) if d["kind"] == "Job"}
    assert replaced == jobs, preview.stdout[-3000:]
    assert 'SHUTDOWN_TIMEOUT_SECONDS: "25"' in preview.stdout, preview.stdout[-3000:]
    after = versions(live(plane, deployed.manifests))
    assert after == before, "the preview changed live objects"


def test_a_config_change_rolls_out_and_reruns_the_jobs(
    deployed: Deployed, plane: ControlPlane
) -> None:
    """Defect 1 of issue 18: a Job's immutable pod template blocked every config change."""
    changed = render(deployed.overlay, change_platform_literal)
    platform = next(
        d["metadata"]["name"]
        for d in docs_of(changed)
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("platform-")
    )
    jobs_before = {
        name: obj["metadata"]["uid"]
        for (kind, name), obj in live(plane, deployed.manifests).items()
        if kind == "Job"
    }
    started = time.time()
    assert_clean(rollout(plane, changed), f"{deployed.overlay} with a changed ConfigMap literal")

    jobs_after = {name: obj for (kind, name), obj in live(plane, changed).items() if kind == "Job"}
    assert jobs_after.keys() == jobs_before.keys()
    for name, job in jobs_after.items():
        assert job["metadata"]["uid"] != jobs_before[name], f"Job {name} was not re-created"
        refs = [
            source["configMapRef"]["name"]
            for container in job["spec"]["template"]["spec"]["containers"]
            for source in container.get("envFrom", [])
            if "configMapRef" in source
        ]
        assert platform in refs, f"Job {name} still reads the old config: {refs}"
    assert_no_diff(plane, changed, f"{deployed.overlay} after the config change")
    problems = admission_problems(plane, workloads_of(changed), started)
    assert not problems, "pods refused or missing after the change:\n" + "\n".join(problems)


def release_objects(plane: ControlPlane, namespace: str = NAMESPACE) -> set[tuple[str, str]]:
    """(kind, name) of the live objects --prune may delete: the release's, no owner's."""
    done = plane.kubectl(
        "-n", namespace, "get", ",".join(apply_tool().PRUNE_KINDS),
        "-l", "app.kubernetes.io/part-of=msa-board", "-o", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {
        (item["kind"], item["metadata"]["name"])
        for item in json.loads(done.stdout)["items"]
        if not item["metadata"].get("ownerReferences")
    }


def test_moving_to_the_other_overlay_rolls_out_and_prunes(
    deployed: Deployed, plane: ControlPlane
) -> None:
    """Issue 18, finding 3: without pruning, local -> production left 6 StatefulSets running.

    ``--prune`` deletes what the other overlay no longer renders (and the old hashed
    ConfigMaps and Secrets), previewed by ``--diff --prune``; the StatefulSets' volumes stay.
    """
    other = OTHER[deployed.overlay]
    manifests = render(other)
    rendered = {(d["kind"], d["metadata"]["name"]) for d in docs_of(manifests)}
    stale = release_objects(plane) - rendered
    assert stale, "nothing to prune: the check below would check nothing"
    claims_before = plane.kubectl("-n", NAMESPACE, "get", "pvc", "-o", "name").stdout.split()

    preview = rollout(plane, manifests, "--diff", "--prune")
    assert preview.returncode == 1, f"{preview.stdout}\n{preview.stderr}"
    would = {
        line.split()[2] for line in preview.stdout.splitlines() if line.startswith("would prune: ")
    }
    assert len(would) == len(stale), f"{would} vs {stale}"

    started = time.time()
    moved = rollout(plane, manifests, "--prune")
    assert_clean(moved, f"moving from {deployed.overlay} to {other}")
    assert_no_diff(plane, manifests, f"{other} applied over {deployed.overlay}")
    left = release_objects(plane) - rendered
    assert not left, f"left running after moving to {other} with --prune: {sorted(left)}"
    if deployed.overlay == "local":
        assert {("StatefulSet", name) for name in ("member-db", "kafka", "redis")} <= stale
        assert claims_before, "the StatefulSets claimed no volume: the check below checks nothing"
    claims_after = plane.kubectl("-n", NAMESPACE, "get", "pvc", "-o", "name").stdout.split()
    deleted = set(claims_before) - set(claims_after)
    assert not deleted, f"--prune deleted volumes: {sorted(deleted)}"
    problems = admission_problems(plane, workloads_of(manifests), started)
    assert not problems, f"pods refused or missing in {other}:\n" + "\n".join(problems)


# ------------------------------------------------------------------ moving an install to apply.py


MIGRATE_NAMESPACE = "msa-migrate"


def in_namespace(manifests: str, namespace: str) -> str:
    """The rendered objects moved to another namespace (the migration gets its own)."""
    docs = docs_of(manifests)
    for doc in docs:
        if doc["kind"] == "Namespace":
            doc["metadata"]["name"] = namespace
        elif "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
    return yaml.safe_dump_all(docs)


def test_an_install_made_with_kubectl_apply_moves_to_apply_py(plane: ControlPlane) -> None:
    """Issue 18, finding 2: after a client-side ``kubectl apply -k``, apply.py met conflicts.

    apply.py stops with the conflicting manager named and the command that moves the
    install (``--force-conflicts``), changing nothing; that command takes the fields over
    once, and from then on a plain apply.py (and a second manager) rolls out cleanly.
    """
    fresh_namespace(plane, MIGRATE_NAMESPACE)
    original = in_namespace(render("local"), MIGRATE_NAMESPACE)
    changed = in_namespace(render("local", change_platform_literal), MIGRATE_NAMESPACE)
    client_side = plane.kubectl("apply", "-f", "-", stdin=original)
    assert client_side.returncode == 0, client_side.stderr
    jobs = {
        name: obj["metadata"]["uid"]
        for (kind, name), obj in live(plane, original).items()
        if kind == "Job"
    }

    refused = rollout(plane, changed)
    assert refused.returncode == 1, refused.stderr
    assert "kubectl-client-side-apply" in refused.stderr, refused.stderr
    # apply.py's advice, not only kubectl's own conflict message: the command that moves it.
    assert "deploy/k8s/apply.py -f - --force-conflicts" in refused.stderr, refused.stderr
    assert "Nothing was changed" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
    unchanged = {
        n: o["metadata"]["uid"] for (k, n), o in live(plane, original).items() if k == "Job"
    }
    assert unchanged == jobs, "the refused rollout changed the Jobs"

    assert_clean(rollout(plane, changed, "--force-conflicts"), "apply.py --force-conflicts")
    assert_clean(rollout(plane, original), "apply.py after the move, without --force-conflicts")
    assert_no_diff(plane, original, "after the move")
    refused_later = second_manager_conflicts(plane, original)
    assert not refused_later, f"another manager still meets conflicts:\n{refused_later}"
    fresh_namespace(plane, MIGRATE_NAMESPACE)


# ------------------------------------------------------------------ the checks can fail


PRIVILEGED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "privileged"},
    "spec": {
        "containers": [
            {
                "name": "shell",
                "image": "busybox:1.36",
                "securityContext": {"privileged": True},
            }
        ]
    },
}


def test_pod_security_refuses_a_privileged_container(plane: ControlPlane) -> None:
    """The namespace of the manifests refuses a privileged pod, directly or via a Deployment.

    So the admission check above is real: the server allows privileged pods
    (``--allow-privileged=true``), and only the namespace's ``restricted`` label refuses them.
    """
    namespace = "psa-check"
    fresh_namespace(plane, namespace)
    (rendered,) = (d for d in docs_of(render("local")) if d["kind"] == "Namespace")
    labels = {k: v for k, v in rendered["metadata"]["labels"].items() if "pod-security" in k}
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    manifest["metadata"]["labels"] = labels  # type: ignore[index]
    assert plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest)).returncode == 0

    pod = plane.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(PRIVILEGED_POD))
    assert pod.returncode != 0, "a privileged pod was admitted"
    assert 'violates PodSecurity "restricted' in pod.stderr, pod.stderr

    template = {"metadata": {"labels": {"app": "privileged"}}, "spec": PRIVILEGED_POD["spec"]}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "privileged"},
        "spec": {"selector": {"matchLabels": {"app": "privileged"}}, "template": template},
    }
    # apply.py refuses what the server only warns about (issue 18, finding 6), creating nothing.
    through_apply = subprocess.run(
        [sys.executable, str(APPLY), "-f", "-"],
        input=json.dumps(
            {**deployment, "metadata": {"name": "privileged", "namespace": namespace}}
        ),
        env=plane.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert through_apply.returncode == 1, through_apply.stderr
    assert "PodSecurity" in through_apply.stderr, through_apply.stderr
    created = plane.kubectl(
        "-n", namespace, "get", "deployment", "privileged", "--ignore-not-found"
    )
    assert not created.stdout.strip(), "apply.py created the privileged Deployment"

    started = time.time()
    done = plane.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(deployment))
    # The Deployment itself is accepted, with a warning; its pods are refused.
    assert done.returncode == 0, done.stderr
    assert "Warning:" in done.stderr, "expected the server's Pod Security warning"
    problems = admission_problems(plane, [deployment], started, namespace)
    assert problems, "the privileged Deployment's pods were admitted"
    assert all("violates PodSecurity" in p for p in problems), problems
    fresh_namespace(plane, namespace)
