"""API-server tests' fixture: one control plane (etcd, kube-apiserver, controllers) per run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest

from tests.k8s_apiserver.controlplane import ControlPlane, build, control_plane, go_binary


def _live(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """A progress printer that shows through pytest's output capture, as it happens.

    A cold build takes 12 minutes or more; captured, its progress would show only at the end
    (or never, when it passes).
    """
    capture = request.config.pluginmanager.getplugin("capturemanager")
    # The first line starts on a line of its own, not after pytest's "test_apply.py ".
    lines = iter(("\n", ""))

    def show(line: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"{next(lines, '')}{line}", flush=True)

    return show


@pytest.fixture(scope="session")
def plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
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
    bin_dir = build(progress=_live(request))
    built = time.monotonic()
    with control_plane(bin_dir) as running:
        print(
            f"\nk8s-apiserver: binaries {built - started:.1f}s, "
            f"control plane ready in {time.monotonic() - built:.1f}s ({running.server})"
        )
        yield running
