"""Image tests' fixtures: the container engine and the images, built once per test run."""

from __future__ import annotations

import time

import pytest

from deploy.images.build import IMAGES, Built, build_all
from deploy.images.engine import Engine, select_engine


@pytest.fixture(scope="session")
def engine() -> Engine:
    """Docker where ``docker info`` answers, else podman; the image tests skip without either."""
    found = select_engine()
    if found is None:
        pytest.skip(
            "image tests: no container engine (`docker info` does not answer and podman is "
            "not installed or does not work; `make podman` installs it)"
        )
    return found


@pytest.fixture(scope="session")
def images(engine: Engine) -> dict[str, Built]:
    """Every image, built (or found up to date) once per run, by ``make images``'s driver."""
    started = time.monotonic()
    built = build_all(engine, list(IMAGES), say=False)
    elapsed = time.monotonic() - started
    rebuilt = [b.name for b in built if b.rebuilt]
    print(f"\nimages: {engine.name}, {elapsed:.1f}s, rebuilt: {', '.join(rebuilt) or 'none'}")
    return {b.name: b for b in built}
