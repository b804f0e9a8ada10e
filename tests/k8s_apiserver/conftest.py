"""API-server tests' fixture: one control plane (etcd, kube-apiserver, controllers) per run."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.k8s_apiserver.controlplane import ControlPlane, build, control_plane, go_binary


@pytest.fixture(scope="session")
def plane() -> Iterator[ControlPlane]:
    """Built (or reused from .local/k8s) and started once; stopped at the end whatever happened.

    Skips only where Go is absent (the binaries are built from the Go module proxy); a failed
    build or start is an error, not a skip.
    """
    if go_binary() is None:
        pytest.skip(
            "k8s-apiserver tests: Go is not installed (deploy/k8s/apiserver/build.sh builds "
            "etcd, kube-apiserver, kube-controller-manager and kubectl with it)"
        )
    started = time.monotonic()
    bin_dir = build()
    built = time.monotonic()
    with control_plane(bin_dir) as running:
        print(
            f"\nk8s-apiserver: binaries {built - started:.1f}s, "
            f"control plane ready in {time.monotonic() - built:.1f}s ({running.server})"
        )
        yield running
