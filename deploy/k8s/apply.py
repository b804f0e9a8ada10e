"""Rollout of deploy/k8s: server-side apply that replaces the objects an update cannot change.

A Job's pod template is immutable, and ours changes with every release (the image tag) and
every config or Secret change (kustomize's content-hashed names), so a plain apply is refused
with ``field is immutable`` while the previous Job exists. Rollout tools replace such objects
instead: Flux deletes and re-creates an object annotated ``kustomize.toolkit.fluxcd.io/force:
enabled`` when the server refuses to update it; Helm and Argo CD do the same for hooks
(``before-hook-creation`` / ``BeforeHookCreation``). This script does it for plain kubectl,
honouring the same annotation, so one annotation in the manifests serves both:

1. render the overlay (``kubectl kustomize DIR``) or read rendered YAML (``-f FILE``, ``-``);
2. for each object annotated ``kustomize.toolkit.fluxcd.io/force: enabled`` that exists, ask
   the server (``kubectl apply --server-side --dry-run=server``) whether it takes the update;
   if it answers ``field is immutable``, delete the object and wait until it and its pods
   are gone (foreground cascade: an old migration pod never runs beside the new one);
3. ``kubectl apply --server-side`` everything, one field manager, kubectl's output passed on.

An unchanged Job is left alone (a re-apply runs no migration); only a changed one runs again,
which is safe because ``<svc> migrate`` and ``chassis topics create`` are idempotent.

Usage::

    python deploy/k8s/apply.py -k deploy/k8s/overlays/local
    kustomize build deploy/k8s/overlays/production | python deploy/k8s/apply.py -f -

KUBECONFIG and ``--context`` choose the cluster. Exit status: kubectl's (0 when everything
applied), 2 for a usage error. Needs kubectl and PyYAML (the project's environment has it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import yaml

FORCE_ANNOTATION = "kustomize.toolkit.fluxcd.io/force"
FIELD_MANAGER = "msa-board"
IMMUTABLE = "field is immutable"
# How long a replaced object may take to go away (its pods' grace periods included).
DELETE_TIMEOUT = "180s"


def replaceable(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects annotated for replacement (``kustomize.toolkit.fluxcd.io/force: enabled``)."""
    return [
        doc
        for doc in docs
        if str((doc.get("metadata", {}).get("annotations") or {}).get(FORCE_ANNOTATION, ""))
        .strip()
        .lower()
        == "enabled"
    ]


class Kubectl:
    """kubectl with the chosen binary, context and field manager."""

    def __init__(self, binary: str, context: str | None, field_manager: str) -> None:
        self.argv = [binary, *(["--context", context] if context else [])]
        self.field_manager = field_manager

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - kubectl with our own arguments, no shell
            [*self.argv, *args], input=stdin, capture_output=True, text=True, check=False
        )

    def render(self, directory: str) -> str:
        done = self.run("kustomize", directory)
        if done.returncode != 0:
            raise SystemExit(f"apply: kubectl kustomize {directory} failed:\n{done.stderr}")
        return done.stdout

    def replace_if_refused(self, doc: dict[str, Any]) -> None:
        """Delete ``doc``'s live object when the server refuses to update it in place."""
        kind, meta = doc["kind"], doc["metadata"]
        target = [kind, meta["name"], *(["-n", meta["namespace"]] if "namespace" in meta else [])]
        live = self.run("get", *target, "-o", "name", "--ignore-not-found")
        if live.returncode != 0 or not live.stdout.strip():
            return  # nothing to replace (or no namespace yet): the apply creates it
        dry = self.run(
            "apply",
            "--server-side",
            "--dry-run=server",
            f"--field-manager={self.field_manager}",
            "-f",
            "-",
            stdin=yaml.safe_dump(doc),
        )
        if dry.returncode == 0 or IMMUTABLE not in dry.stderr:
            return  # updatable in place, or another error the real apply reports
        print(
            f"apply: replacing {live.stdout.strip()} (the server refuses the update: {IMMUTABLE})",
            file=sys.stderr,
        )
        gone = self.run(
            "delete", *target, "--cascade=foreground", "--wait", f"--timeout={DELETE_TIMEOUT}"
        )
        if gone.returncode != 0:
            raise SystemExit(f"apply: could not delete {live.stdout.strip()}:\n{gone.stderr}")

    def apply(self, manifests: str) -> int:
        done = self.run(
            "apply", "--server-side", f"--field-manager={self.field_manager}", "-f", "-",
            stdin=manifests,
        )  # fmt: skip
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-k", "--kustomize", metavar="DIR", help="an overlay to render")
    source.add_argument("-f", "--filename", metavar="FILE", help="rendered YAML ('-': stdin)")
    parser.add_argument("--context", help="the kubeconfig context (default: the current one)")
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl binary")
    parser.add_argument("--field-manager", default=FIELD_MANAGER)
    args = parser.parse_args(argv)

    kubectl = Kubectl(args.kubectl, args.context, args.field_manager)
    if args.kustomize:
        manifests = kubectl.render(args.kustomize)
    elif args.filename == "-":
        manifests = sys.stdin.read()
    else:
        with open(args.filename, encoding="utf-8") as file:
            manifests = file.read()
    docs = [doc for doc in yaml.safe_load_all(manifests) if doc]
    for doc in replaceable(docs):
        kubectl.replace_if_refused(doc)
    return kubectl.apply(manifests)


if __name__ == "__main__":
    sys.exit(main())
