"""Rollout of deploy/k8s: server-side apply that replaces the objects an update cannot change.

A Job's pod template is immutable, and ours changes with every release (the image tag) and
every config or Secret change (kustomize's content-hashed names), so a plain apply is refused
with ``field is immutable`` while the previous Job exists. Rollout tools replace such objects
instead: Flux deletes and re-creates an object annotated ``kustomize.toolkit.fluxcd.io/force:
enabled`` when the server refuses to update it; Helm and Argo CD do the same for hooks
(``before-hook-creation`` / ``BeforeHookCreation``). This script does it for plain kubectl,
honouring the same annotation, so one annotation in the manifests serves both:

1. render the overlay (``kubectl kustomize DIR``) or read rendered YAML (``-f FILE``, ``-``),
   and write each Secret's ``data`` as the server stores it (kustomize wraps long base64
   values over several lines; the server returns them on one);
2. apply the Namespaces first (the rest is checked against their Pod Security labels);
3. for each object annotated ``kustomize.toolkit.fluxcd.io/force: enabled`` that exists, ask
   the server (``kubectl apply --server-side --dry-run=server``) whether it takes the update;
   if it answers ``field is immutable``, the object is to be replaced;
4. dry-run the whole apply on the server: stop, changing nothing, on a conflict with another
   field manager (with what to do about it) or on a Pod Security warning (a workload whose
   pods the namespace would refuse: the server accepts the Deployment and only warns);
5. delete the objects to replace and wait until they and their pods are gone (foreground
   cascade: an old migration pod never runs beside the new one);
6. ``kubectl apply --server-side`` everything, one field manager, kubectl's output passed on;
7. with ``--prune``, delete the objects of this release that the manifests no longer name.

An unchanged Job is left alone (a re-apply runs no migration); only a changed one runs again,
which is safe because ``<svc> migrate`` and ``chassis topics create`` are idempotent.

``--diff`` previews instead (nothing changes): kubectl's server-side diff of what would be
updated, the Jobs that would be replaced and, with ``--prune``, the objects that would be
deleted. ``--force-conflicts`` takes fields over from another field manager, once, when an
install made with ``kubectl apply`` (client-side) moves to this script (docs/deploy.md).

Pruning selects by the release label every object of the manifests carries
(``app.kubernetes.io/part-of``), in the manifests' namespaces, and only the kinds in
PRUNE_KINDS. Never PersistentVolumeClaims (a StatefulSet's volumes hold the databases: a
volume outlives its StatefulSet on purpose, and deleting it is a decision, not a rollout
step) and never Namespaces (deleting one deletes everything in it).

Usage::

    python deploy/k8s/apply.py -k deploy/k8s/overlays/local [--prune] [--diff]
    kustomize build deploy/k8s/overlays/production | python deploy/k8s/apply.py -f -

KUBECONFIG and ``--context`` choose the cluster. Exit status: 0 when everything applied;
1 when the server refused something (kubectl's status, a conflict, a Pod Security warning);
2 for a usage or input error (invalid YAML). With ``--diff``, like ``kubectl diff``: 0 no
change, 1 changes, above 1 an error. Needs kubectl and PyYAML (the project's environment).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

FORCE_ANNOTATION = "kustomize.toolkit.fluxcd.io/force"
FIELD_MANAGER = "msa-board"
IMMUTABLE = "field is immutable"
# How long a replaced or pruned object may take to go away (its pods' grace periods included).
DELETE_TIMEOUT = "180s"
# The label every object of the release carries (base/kustomization.yaml `labels`).
RELEASE_LABEL = "app.kubernetes.io/part-of"
# What --prune may delete: the kinds deploy/k8s renders, by resource and group. Not
# persistentvolumeclaims and not namespaces (module docstring says why).
PRUNE_KINDS = (
    "deployments.apps",
    "statefulsets.apps",
    "jobs.batch",
    "horizontalpodautoscalers.autoscaling",
    "poddisruptionbudgets.policy",
    "networkpolicies.networking.k8s.io",
    "ingresses.networking.k8s.io",
    "services",
    "configmaps",
    "secrets",
    "serviceaccounts",
)
POD_SECURITY = re.compile(r"Warning: .*(would violate|violates) PodSecurity")
CONFLICT_WITH = re.compile(r'conflicts? with "([^"]+)"')

Manifest = dict[str, Any]


class Refused(Exception):
    """The rollout stops: ``str(self)`` says why and what to do; ``status`` is the exit code."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ reading the manifests


def parse(manifests: str, source: str) -> list[Manifest]:
    """The objects of a YAML stream, empty documents dropped.

    Raises Refused (status 2) on invalid YAML or a document that is not a named object.
    """
    try:
        docs = [doc for doc in yaml.safe_load_all(manifests) if doc]
    except yaml.YAMLError as error:
        raise Refused(f"apply: {source} is not valid YAML:\n{error}", 2) from error
    for doc in docs:
        if not (
            isinstance(doc, dict)
            and doc.get("kind")
            and isinstance(doc.get("metadata"), dict)
            and doc["metadata"].get("name")
        ):
            raise Refused(f"apply: {source}: a document is not a named Kubernetes object", 2)
    if not docs:
        raise Refused(f"apply: {source} holds no objects", 2)
    return docs


def as_stored(docs: Sequence[Manifest]) -> list[Manifest]:
    """The objects written as the server stores them, where kustomize writes them otherwise.

    A Secret's ``data`` values: kustomize's secretGenerator wraps base64 longer than 70
    characters over several lines, the server decodes it and returns it on one line. Sent
    wrapped, the next field manager that applies the same Secret conflicts with ours and a
    GitOps diff never settles; sent on one line, both see the stored value.
    """
    out = []
    for doc in docs:
        if doc.get("kind") == "Secret" and doc.get("apiVersion") == "v1" and doc.get("data"):
            doc = {**doc, "data": {k: "".join(str(v).split()) for k, v in doc["data"].items()}}
        out.append(doc)
    return out


def dump(docs: Iterable[Manifest]) -> str:
    """A YAML stream kubectl reads: one JSON document per object."""
    return "\n---\n".join(json.dumps(doc, default=str) for doc in docs) + "\n"


def replaceable(docs: Sequence[Manifest]) -> list[Manifest]:
    """The objects annotated for replacement (``kustomize.toolkit.fluxcd.io/force: enabled``)."""
    return [
        doc
        for doc in docs
        if str((doc.get("metadata", {}).get("annotations") or {}).get(FORCE_ANNOTATION, ""))
        .strip()
        .lower()
        == "enabled"
    ]


def ident(doc: Manifest) -> tuple[str, str, str]:
    """(kind, namespace or "", name) of an object."""
    meta = doc["metadata"]
    return doc["kind"], meta.get("namespace", ""), meta["name"]


def conflict_advice(stderr: str, field_manager: str, argv: Sequence[str]) -> str | None:
    """What to do about ``kubectl apply``'s conflicts with other field managers, or None."""
    owners = sorted(set(CONFLICT_WITH.findall(stderr)))
    if not owners:
        return None
    command = " ".join(["python deploy/k8s/apply.py", *argv, "--force-conflicts"])
    return (
        f"apply: the server refuses the apply: fields it would change belong to another field "
        f"manager ({', '.join(owners)}), not to {field_manager!r}. Nothing was changed.\n"
        "  If that manager is kubectl's own (kubectl-client-side-apply: the install was made "
        "with `kubectl apply -k`;\n  kubectl or kubectl-edit: with `kubectl apply "
        "--server-side` or `kubectl edit`), move the install to this script once:\n"
        f"      {command}\n"
        "  then use only this script (docs/deploy.md, 'Moving an install to apply.py').\n"
        "  If it is another controller (a GitOps tool, an operator), do not force: change the "
        "manifests or that controller.\n"
        f"kubectl said:\n{stderr}"
    )


# ------------------------------------------------------------------ talking to the server


@dataclass(frozen=True)
class Kubectl:
    """kubectl with the chosen binary, context and field manager."""

    binary: str
    context: str | None
    field_manager: str
    force_conflicts: bool = False

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, *(["--context", self.context] if self.context else []), *args]
        return subprocess.run(  # noqa: S603 - kubectl with our own arguments, no shell
            argv, input=stdin, capture_output=True, text=True, check=False
        )

    def render(self, directory: str) -> str:
        done = self.run("kustomize", directory)
        if done.returncode != 0:
            raise Refused(f"apply: kubectl kustomize {directory} failed:\n{done.stderr}", 2)
        return done.stdout

    def server_side(self, *extra: str) -> list[str]:
        """The flags of every apply and diff: server-side, our manager, forced or not."""
        force = ["--force-conflicts"] if self.force_conflicts else []
        return ["--server-side", f"--field-manager={self.field_manager}", *force, *extra]

    def apply(
        self, docs: Sequence[Manifest], *, dry_run: bool = False
    ) -> subprocess.CompletedProcess[str]:
        extra = ["--dry-run=server"] if dry_run else []
        return self.run("apply", *self.server_side(*extra), "-f", "-", stdin=dump(docs))

    def exists(self, kind: str, namespace: str, name: str) -> str:
        """``kind/name`` of the live object, or "" when there is none."""
        live = self.run(
            "get", kind, name, *(["-n", namespace] if namespace else []), "-o", "name",
            "--ignore-not-found",
        )  # fmt: skip
        return live.stdout.strip() if live.returncode == 0 else ""

    def refuses_update(self, doc: Manifest) -> str:
        """``kind/name`` of ``doc``'s live object when the server refuses to update it, else ""."""
        live = self.exists(*ident(doc))
        if not live:
            return ""  # nothing to replace (or no namespace yet): the apply creates it
        dry = self.apply([doc], dry_run=True)
        return live if dry.returncode != 0 and IMMUTABLE in dry.stderr else ""

    def delete(self, namespace: str, names: Sequence[str], *extra: str) -> None:
        done = self.run(
            "delete", *names, *(["-n", namespace] if namespace else []), "--wait",
            f"--timeout={DELETE_TIMEOUT}", *extra,
        )  # fmt: skip
        if done.returncode != 0:
            raise Refused(f"apply: could not delete {' '.join(names)}:\n{done.stderr}")

    def prunable(self, docs: Sequence[Manifest]) -> dict[str, list[str]]:
        """Live objects of this release that ``docs`` no longer name: namespace -> kind/name.

        Only PRUNE_KINDS, only objects with the release label's value the manifests carry,
        only in their namespaces, and never an object another object owns (a controller
        made it). Raises Refused when the manifests carry no single release label.
        """
        releases = {(doc["metadata"].get("labels") or {}).get(RELEASE_LABEL) for doc in docs}
        if len(releases) != 1 or None in releases:
            raise Refused(
                f"apply: --prune needs one {RELEASE_LABEL} label on every object "
                f"(found {sorted(map(str, releases))})",
                2,
            )
        (release,) = releases
        rendered = {ident(doc) for doc in docs}
        namespaces = sorted({ns for _, ns, _ in rendered if ns})
        found: dict[str, list[str]] = {}
        for namespace in namespaces:
            if not self.exists("namespace", "", namespace):
                continue
            done = self.run(
                "get", ",".join(PRUNE_KINDS), "-n", namespace, "-l", f"{RELEASE_LABEL}={release}",
                "-o", "json",
            )  # fmt: skip
            if done.returncode != 0:
                raise Refused(f"apply: could not list {namespace} for pruning:\n{done.stderr}")
            for item in json.loads(done.stdout)["items"]:
                meta = item["metadata"]
                if meta.get("ownerReferences") or ident(item) in rendered:
                    continue
                group = item["apiVersion"].split("/")[0] if "/" in item["apiVersion"] else ""
                kind = f"{item['kind'].lower()}.{group}" if group else item["kind"].lower()
                found.setdefault(namespace, []).append(f"{kind}/{meta['name']}")
        return found


def pod_security_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if POD_SECURITY.search(line)]


def refuse_on_pod_security(done: subprocess.CompletedProcess[str], when: str) -> None:
    warned = pod_security_warnings(done.stderr)
    if warned:
        raise Refused(
            f"apply: {when}: the namespace's Pod Security level would refuse these workloads' "
            "pods (the server accepts the workload and only warns):\n" + "\n".join(warned)
        )


# ------------------------------------------------------------------ the two modes


def rollout(kubectl: Kubectl, docs: list[Manifest], argv: Sequence[str], prune: bool) -> int:
    """Apply ``docs`` (module docstring, steps 2-7); returns the exit status."""
    namespaces = [doc for doc in docs if doc["kind"] == "Namespace"]
    if namespaces:
        first = kubectl.apply(namespaces)
        if first.returncode != 0:
            advice = conflict_advice(first.stderr, kubectl.field_manager, argv)
            raise Refused(advice or f"apply: the Namespaces were refused:\n{first.stderr}")
        sys.stdout.write(first.stdout)
    rest = [doc for doc in docs if doc["kind"] != "Namespace"]
    replace = {
        ident(doc): live for doc in replaceable(rest) if (live := kubectl.refuses_update(doc))
    }
    checked = [doc for doc in rest if ident(doc) not in replace]
    dry = kubectl.apply(checked, dry_run=True)
    if dry.returncode != 0:
        advice = conflict_advice(dry.stderr, kubectl.field_manager, argv)
        raise Refused(advice or f"apply: the server refuses the apply (dry run):\n{dry.stderr}")
    refuse_on_pod_security(dry, "dry run, nothing was changed")
    for key, live in replace.items():
        print(
            f"apply: replacing {live} (the server refuses the update: {IMMUTABLE})", file=sys.stderr
        )
        kubectl.delete(key[1], [live], "--cascade=foreground")
    done = kubectl.apply(rest)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        return done.returncode
    refuse_on_pod_security(done, "applied, but")
    if prune:
        for namespace, names in kubectl.prunable(docs).items():
            kubectl.delete(namespace, names, "--dry-run=server")
            for name in names:
                print(f"apply: pruning {name} (no longer in the manifests)", file=sys.stderr)
            kubectl.delete(namespace, names)
    return 0


def preview(kubectl: Kubectl, docs: list[Manifest], argv: Sequence[str], prune: bool) -> int:
    """Show what ``rollout`` would change, changing nothing; kubectl diff's exit status."""
    changed = False
    missing = [
        doc["metadata"]["name"]
        for doc in docs
        if doc["kind"] == "Namespace"
        and not kubectl.exists("namespace", "", doc["metadata"]["name"])
    ]
    if missing:
        # Nothing can be dry-run in a namespace that does not exist yet.
        inside = [doc for doc in docs if doc["metadata"].get("namespace") in missing]
        for doc in inside:
            print(f"would create {doc['kind']}/{doc['metadata']['name']}")
        print(f"would create namespace {', '.join(missing)} with {len(inside)} objects in it")
        docs = [doc for doc in docs if doc not in inside and doc["kind"] != "Namespace"]
        changed = True
    replace = {
        ident(doc): live for doc in replaceable(docs) if (live := kubectl.refuses_update(doc))
    }
    for live in replace.values():
        print(f"would be replaced: {live} (the server refuses the update: {IMMUTABLE})")
    changed = changed or bool(replace)
    rest = [doc for doc in docs if ident(doc) not in replace]
    if rest:
        diff = kubectl.run("diff", *kubectl.server_side(), "-f", "-", stdin=dump(rest))
        sys.stdout.write(diff.stdout)
        if diff.returncode > 1:
            advice = conflict_advice(diff.stderr, kubectl.field_manager, argv)
            print(advice or f"apply: kubectl diff failed:\n{diff.stderr}", file=sys.stderr)
            return diff.returncode
        changed = changed or diff.returncode == 1
    if prune and not missing:
        for names in kubectl.prunable(docs).values():
            for name in names:
                print(f"would prune: {name} (no longer in the manifests)")
                changed = True
    return 1 if changed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-k", "--kustomize", metavar="DIR", help="an overlay to render")
    source.add_argument("-f", "--filename", metavar="FILE", help="rendered YAML ('-': stdin)")
    parser.add_argument("--context", help="the kubeconfig context (default: the current one)")
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl binary")
    parser.add_argument("--field-manager", default=FIELD_MANAGER)
    parser.add_argument(
        "--force-conflicts",
        action="store_true",
        help="take over fields another field manager owns (once, moving an install made with "
        "`kubectl apply` to this script)",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help=f"delete the objects labelled {RELEASE_LABEL} like the manifests that they no "
        "longer name (never volumes or namespaces)",
    )
    parser.add_argument(
        "--diff",
        action="store_true",
        help="show what an apply would change and change nothing (exit 0: none, 1: changes)",
    )
    args = parser.parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    given = [arg for arg in given if arg not in ("--force-conflicts", "--diff")]

    kubectl = Kubectl(args.kubectl, args.context, args.field_manager, args.force_conflicts)
    try:
        if args.kustomize:
            manifests, what = kubectl.render(args.kustomize), args.kustomize
        elif args.filename == "-":
            manifests, what = sys.stdin.read(), "standard input"
        else:
            try:
                with open(args.filename, encoding="utf-8") as file:
                    manifests, what = file.read(), args.filename
            except OSError as error:
                raise Refused(f"apply: cannot read {args.filename}: {error}", 2) from error
        docs = as_stored(parse(manifests, what))
        mode = preview if args.diff else rollout
        return mode(kubectl, docs, given, args.prune)
    except Refused as refused:
        print(refused, file=sys.stderr)
        return refused.status


if __name__ == "__main__":
    sys.exit(main())
