"""Build driver for `make images`: every image from the one Dockerfile, with Docker or podman, timed and sized.

    python -m deploy.images.build [--only board,web] [--engine docker|podman]

1. Engine: Docker when ``docker info`` answers, else podman with the repository-local
   configuration of ``deploy/images/engine.py`` (``CONTAINER_ENGINE`` forces one).
2. Bases: the Dockerfile's own defaults (``PYTHON_IMAGE``, ``UV_IMAGE``) when the engine has
   them or can pull them; otherwise the local stand-ins of ``deploy/images/standins.py``,
   and it says so. ``PYTHON_IMAGE``/``UV_IMAGE`` in the environment override both.
3. Build: the root ``Dockerfile`` once per image, ``--build-arg DEPLOYABLE=<name>``, tagged as
   docker-compose.yml names the image:
   ``${IMAGE_PREFIX:-ghcr.io/example/msa-board}/<name>:${IMAGE_TAG:-0.1.0}``.
   Behind a proxy that re-signs TLS (``SSL_CERT_FILE`` set on this machine), podman mounts
   that bundle into the build steps, so uv can reach PyPI; it never enters a layer.
4. Report: each image's size and build time, and the total.

Exit status 0 when every image was built, 1 otherwise (2 when no engine works).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.images.engine import ROOT, Engine, EngineError, select_engine
from deploy.images.standins import ensure_standins

#: The one Dockerfile every image is built from (its ``image-<name>`` stages name the images).
DOCKERFILE = "Dockerfile"
#: Every image, in build order (loadgen is a tool under compose's ``loadgen`` profile, built
#: like the deployables).
IMAGES: tuple[str, ...] = ("member", "board", "qna", "saga", "gateway", "web", "loadgen")
#: Where the build steps see the host's CA bundle (podman only; see module docstring).
BUILD_CA_PATH = "/run/build-ca/ca-certificates.crt"
#: The label holding a digest of everything a build reads (see ``inputs_digest``).
INPUTS_LABEL = "io.github.example.msa-board.build-inputs"
#: The OCI label naming the image this one is built on (the Dockerfile names the official one).
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
#: Never part of an image (.dockerignore), so never part of the digest either.
_NOT_INPUTS = re.compile(
    r"(^|/)(__pycache__|\.venv|\.mypy_cache|\.ruff_cache|\.pytest_cache|tests)(/|$)|\.py[cod]$|\.egg-info(/|$)"
)


def image_ref(name: str) -> str:
    """The tag docker-compose.yml gives the image (same variables, same defaults)."""
    prefix = os.environ.get("IMAGE_PREFIX") or "ghcr.io/example/msa-board"
    tag = os.environ.get("IMAGE_TAG") or "0.1.0"
    return f"{prefix}/{name}:{tag}"


@dataclass(frozen=True)
class Stage:
    """One ``FROM <base> [AS <name>]`` stage: its instructions as (KEYWORD, value) pairs."""

    base: str
    name: str | None
    instructions: tuple[tuple[str, str], ...]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, value) per instruction, line continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, value = line.partition(" ")
            found.append((keyword.upper(), value.strip()))
    return found


def dockerfile_defaults() -> dict[str, str]:
    """The ``ARG NAME=default`` values declared before the first ``FROM``."""
    defaults: dict[str, str] = {}
    for keyword, value in dockerfile_instructions(ROOT / DOCKERFILE):
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in value:
            key, _, default = value.partition("=")
            defaults[key] = default
    return defaults


def stages(global_args: dict[str, str]) -> list[Stage]:
    """The Dockerfile's stages, each ``FROM`` expanded with the global build arguments."""
    found: list[Stage] = []
    base, name = "", None
    body: list[tuple[str, str]] = []
    for keyword, value in dockerfile_instructions(ROOT / DOCKERFILE):
        if keyword == "FROM":
            if base:
                found.append(Stage(base, name, tuple(body)))
            words = _expand(value, global_args).split()
            base, name, body = words[0], (words[2] if len(words) > 2 else None), []
        elif base:
            body.append((keyword, value))
    found.append(Stage(base, name, tuple(body)))
    return found


def _expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], ""), value)


def image_stages(name: str) -> list[Stage]:
    """The stages building image ``name`` needs: the last stage with ``DEPLOYABLE=name``, and
    every stage it starts from or copies from, as BuildKit and buildah select them."""
    all_stages = stages({**dockerfile_defaults(), "DEPLOYABLE": name})
    by_name = {s.name: s for s in all_stages if s.name}
    needed: list[Stage] = []
    todo = [all_stages[-1]]
    while todo:
        stage = todo.pop()
        if stage in needed:
            continue
        needed.append(stage)
        refs = [stage.base] + [
            word.removeprefix("--from=")
            for keyword, value in stage.instructions
            if keyword == "COPY"
            for word in value.split()
            if word.startswith("--from=")
        ]
        todo += [by_name[ref] for ref in refs if ref in by_name]
    return needed


def select_bases(engine: Engine, say: bool = True) -> dict[str, str]:
    """Build arguments choosing the base images (empty: the Dockerfile's own defaults)."""
    defaults = dockerfile_defaults()
    overrides = {k: os.environ[k] for k in ("PYTHON_IMAGE", "UV_IMAGE") if os.environ.get(k)}
    wanted = {key: overrides.get(key, defaults[key]) for key in ("PYTHON_IMAGE", "UV_IMAGE")}
    if all(have_or_pull(engine, ref) for ref in wanted.values()):
        return overrides
    uv_version = defaults["UV_IMAGE"].rpartition(":")[2]
    if say:
        print(
            f"images: no registry answers for {' and '.join(wanted.values())}: using local "
            f"stand-ins (Debian 12's python3.11 from debootstrap, uv {uv_version} from its "
            "PyPI wheel); see docs/deploy.md",
            flush=True,
        )
    return ensure_standins(engine, uv_version, say=say)


def have_or_pull(engine: Engine, ref: str) -> bool:
    """True when ``ref`` is in the engine's store, pulled now if a registry answers (300 s at most)."""
    if engine.image_exists(ref):
        return True
    try:
        return engine.run("pull", "--quiet", ref, check=False, timeout=300).returncode == 0
    except TimeoutError:
        return False


def copied_paths(name: str) -> list[str]:
    """The Dockerfile and the repository paths that image ``name``'s ``COPY`` instructions
    read (not ``--from``), in the stages that image needs."""
    paths = [DOCKERFILE]
    for stage in image_stages(name):
        for keyword, value in stage.instructions:
            words = value.split()
            if keyword == "COPY" and not any(w.startswith("--from") for w in words):
                paths += [w for w in words[:-1] if not w.startswith("--")]
    return paths


def inputs_digest(name: str, build_args: dict[str, str]) -> str:
    """SHA-256 over the build arguments and every file the build copies in.

    An image whose label carries the same digest was built from exactly these inputs, so
    the build is skipped: even a fully cached build costs 10-15 s per image with podman 4.3
    (it hashes each stage's content to look its layers up). It takes in more files than the
    build context does (it ignores only what .dockerignore surely drops), so it can cause a
    needless rebuild, never a stale image.
    """
    digest = hashlib.sha256()
    for key, value in sorted(build_args.items()):
        digest.update(f"arg {key}={value}\n".encode())
    for top in sorted(set(copied_paths(name))):
        base = ROOT / top
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(ROOT).as_posix()
            if _NOT_INPUTS.search(rel):
                continue
            digest.update(f"file {rel} {path.stat().st_mode & 0o111:o}\n".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_labels(build_args: dict[str, str]) -> dict[str, str]:
    """Labels set over the Dockerfile's own: ``base.name`` names the base actually used when
    ``PYTHON_IMAGE`` is not the Dockerfile's default (a local stand-in, or an override), so an
    image never claims an official base it was not built on."""
    python = build_args.get("PYTHON_IMAGE")
    if python and python != dockerfile_defaults()["PYTHON_IMAGE"]:
        return {BASE_NAME_LABEL: python}
    return {}


def image_label(engine: Engine, ref: str, label: str) -> str | None:
    done = engine.run("image", "inspect", "--format", "{{json .Config.Labels}}", ref, check=False)
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout.strip() or "null") or {}
    value = labels.get(label)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Built:
    name: str
    ref: str
    seconds: float
    size_bytes: int
    #: False when the image already carried this build's inputs digest.
    rebuilt: bool = True


def build_one(engine: Engine, name: str, build_args: dict[str, str], *, say: bool = False) -> Built:
    """Build one image from the repository root, unless it is up to date (same inputs
    digest); raises EngineError with the build's log on failure. ``say``: print a line when
    the build starts (only when it does)."""
    ref = image_ref(name)
    started = time.monotonic()
    image_args = {**build_args, "DEPLOYABLE": name}
    labels = build_labels(image_args)
    # The labels are inputs too: an image built before a label changed is built again.
    inputs = inputs_digest(name, {**image_args, **{f"label {k}": v for k, v in labels.items()}})
    if image_label(engine, ref, INPUTS_LABEL) == inputs:
        return Built(name, ref, time.monotonic() - started, engine.image_size(ref), rebuilt=False)
    if say:
        print(f"images: building {ref} (DEPLOYABLE={name})", flush=True)
    argv = ["build", "-f", DOCKERFILE, "-t", ref, "--label", f"{INPUTS_LABEL}={inputs}"]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    revision = _git_revision()
    args = {**image_args, "REVISION": revision} if revision else image_args
    for key, value in sorted(args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    if engine.name == "podman":
        # Stand-ins exist only locally; the real bases were pulled (or are present) above.
        argv += ["--pull=never", "--layers"]
        ca = os.environ.get("SSL_CERT_FILE")
        if ca and Path(ca).is_file():
            argv += ["--volume", f"{ca}:{BUILD_CA_PATH}:ro"]
            argv += ["--build-arg", f"SSL_CERT_FILE={BUILD_CA_PATH}"]
    engine.run(*argv, str(ROOT))
    seconds = time.monotonic() - started
    return Built(name, ref, seconds, engine.image_size(ref))


def _git_revision() -> str | None:
    """The commit the images are built from, for the OCI revision label (None outside git)."""
    try:
        out = subprocess.run(  # noqa: S603 - fixed command, no shell
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def build_all(engine: Engine, names: list[str], *, say: bool = True) -> list[Built]:
    """Select the bases once, then build each image in turn; stop at the first failure."""
    build_args = select_bases(engine, say=say)
    built = []
    for name in names:
        built.append(build_one(engine, name, build_args, say=say))
    return built


def report(built: list[Built], total: float) -> str:
    lines = [f"{'image':<44} {'size':>9} {'build':>8}"]
    for b in built:
        note = "" if b.rebuilt else "  (up to date)"
        lines.append(f"{b.ref:<44} {b.size_bytes / 1e6:>6.0f} MB {b.seconds:>7.1f}s{note}")
    lines.append(f"{'total':<44} {sum(b.size_bytes for b in built) / 1e6:>6.0f} MB {total:>7.1f}s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated images (default: all)")
    parser.add_argument("--engine", choices=("docker", "podman"))
    args = parser.parse_args(argv)
    names = list(IMAGES) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = sorted(set(names) - set(IMAGES))
    if unknown or not names:
        parser.error(f"unknown image(s) {unknown}; choose from {', '.join(IMAGES)}")
    engine = select_engine(args.engine)
    if engine is None:
        print("images: neither `docker info` nor podman works (make podman installs podman)")
        return 2
    print(f"images: building with {engine.name}", flush=True)
    started = time.monotonic()
    try:
        built = build_all(engine, names)
    except EngineError as error:
        print(f"images: {error}", file=sys.stderr)
        return 1
    print(report(built, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
