"""The Compose v2 CLI built from source through the Go module proxy, for machines with no Docker.

    python -m deploy.compose.binary      # prints the path of the binary, building it if needed

Nothing here installs Docker: the Compose CLI is a Go program published as the module
``github.com/docker/compose/v2``, so the Go module proxy (a package registry) serves its
source. ``go install`` refuses that module (its ``go.mod`` has ``exclude`` directives), so
it is downloaded with ``go mod download`` and built with ``go build ./cmd`` inside the
downloaded module, about 3 minutes on two cores. The binary is cached as
``.local/compose/bin/docker-compose-<version>`` and rebuilt only when the version changes.

The binary runs standalone (``docker-compose up``), talking to whatever ``DOCKER_HOST``
names: a Docker daemon, or ``podman system service`` (tests/compose). It is the same code as
the ``docker compose`` plugin; only the name it is started under differs, so no Docker CLI
is needed.

Only the standard library: like ``make images``, it runs before any environment is synced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy.images.engine import ROOT

#: The Compose release built here; it must understand the file's ``!reset`` tags and
#: ``start_interval`` (Compose >= 2.24).
COMPOSE_VERSION = "v2.40.3"
COMPOSE_MODULE = "github.com/docker/compose/v2"
BIN_DIR = ROOT / ".local" / "compose" / "bin"


class ComposeBuildError(RuntimeError):
    """Go is missing, or downloading or building the module failed."""


def binary_path(version: str = COMPOSE_VERSION) -> Path:
    return BIN_DIR / f"docker-compose-{version}"


def ensure_compose(version: str = COMPOSE_VERSION, *, say: bool = True) -> Path:
    """The path of a working Compose binary of ``version``, built first if not cached.

    Raises ComposeBuildError with the tool's output when Go is missing or the build fails.
    """
    target = binary_path(version)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        raise ComposeBuildError(
            "compose: Go is not installed; Compose v2 is built from source (https://go.dev/dl)"
        )
    started = time.monotonic()
    if say:
        print(f"compose: building {COMPOSE_MODULE}@{version} from the Go module proxy", flush=True)
    env = dict(os.environ)
    # The module cache is read-only and not a git checkout: no VCS stamping.
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false").strip()
    env.setdefault("CGO_ENABLED", "0")
    download = _run(
        [go, "mod", "download", "-json", f"{COMPOSE_MODULE}@{version}"], env=env, cwd=ROOT
    )
    module_dir = Path(json.loads(download)["Dir"])
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BIN_DIR, prefix="build-") as work:
        partial = Path(work) / "docker-compose"
        # The same -X flag the release builds set, so `version` reports the real number.
        ldflags = f"-s -w -X github.com/docker/compose/v2/internal.Version={version}"
        _run(
            [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), "./cmd"],
            env=env,
            cwd=module_dir,
        )
        partial.rename(target)
    if say:
        print(f"compose: built {target.relative_to(ROOT)} in {time.monotonic() - started:.0f}s")
    return target


def _run(argv: list[str], *, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(  # noqa: S603 - the go tool, no shell
        argv, env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-3000:]
        raise ComposeBuildError(f"compose: {' '.join(argv[:3])} exited {done.returncode}\n{tail}")
    return done.stdout


def main() -> int:
    try:
        print(ensure_compose())
    except ComposeBuildError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
