"""Compose test fixtures: the engine, the Compose binary and every image, each made once per run."""

from __future__ import annotations

import time

import pytest

from deploy.compose.binary import ComposeBuildError, ensure_compose
from deploy.compose.standins import select_infra_images
from deploy.images.build import IMAGES, build_all
from deploy.images.engine import Engine, select_engine
from tests.compose.stack import compose_healthchecks


@pytest.fixture(scope="session")
def compose_engine() -> Engine:
    """Docker where ``docker info`` answers, else podman; the test skips without either."""
    found = select_engine()
    if found is None:
        pytest.skip(
            "compose test: no container engine (`docker info` does not answer and podman is "
            "not installed or does not work; `make podman` installs it)"
        )
    return found


@pytest.fixture(scope="session")
def compose_binary() -> str:
    """Compose v2 built from the Go module proxy (cached under .local/compose/bin)."""
    started = time.monotonic()
    try:
        path = ensure_compose(say=False)
    except ComposeBuildError as error:
        pytest.skip(f"compose test: no Compose v2 binary ({error})")
    print(f"\ncompose: {path.name} ready in {time.monotonic() - started:.1f}s")
    return str(path)


@pytest.fixture(scope="session")
def compose_images(compose_engine: Engine) -> dict[str, str]:
    """The application images (``make images``' driver) and the infrastructure images: the
    official ones where they can be had, else the stand-ins; returns the compose variables
    that select the stand-ins."""
    started = time.monotonic()
    built = build_all(compose_engine, list(IMAGES), say=False)
    rebuilt = [b.name for b in built if b.rebuilt]
    chosen = select_infra_images(compose_engine, say=True)
    print(
        f"compose: images ready in {time.monotonic() - started:.1f}s "
        f"(rebuilt: {', '.join(rebuilt) or 'none'}; stand-ins: {', '.join(chosen.values()) or 'none'})"
    )
    assert compose_healthchecks(), "docker-compose.yml has no healthcheck at all"
    return chosen
