"""Local stand-ins for the two base images, for machines that reach no container registry.

The Dockerfile starts from ``python:3.11.x-slim-bookworm`` (Docker Hub) and copy uv out of
``ghcr.io/astral-sh/uv:<version>``. Where neither registry answers but Debian's mirror and
PyPI do (package registries only), ``make images`` builds look-alikes from those:

- **Python**: ``debootstrap --variant=minbase --include=python3.11,ca-certificates bookworm``
  with ``/usr/local/bin/python3.11`` (and ``python3``, ``python``) linked to Debian's
  interpreter, because the Dockerfile names the official image's path. It is Debian's
  3.11.2 with Debian's patches, not the official image's own build of the newest 3.11; the
  bytes differ, the contract (a Debian 12 with a 3.11 at that path and a CA bundle) holds.
- **uv**: the ``uv`` binary out of the PyPI wheel of the very version the Dockerfile pins,
  at ``/uv`` as in the official image.

Each is imported as a one-layer image (``<engine> import``) and cached twice: the root
filesystem as a tarball under ``.local/images/`` and the image in the engine's store.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from deploy.images.engine import ROOT, Engine

CACHE = ROOT / ".local" / "images"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: Tags of the stand-ins: ``localhost/`` so no engine ever tries to pull them.
PYTHON_STANDIN = "localhost/msa-board/python-standin:3.11-bookworm"
UV_STANDIN_REPOSITORY = "localhost/msa-board/uv-standin"


def _as_root(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return argv
    if shutil.which("sudo") is None:
        raise SystemExit(f"images: {argv[0]} needs root; run as root or install sudo")
    return ["sudo", *argv]


def python_rootfs_tarball() -> Path:
    """The Python stand-in's root filesystem as a tarball (debootstrap, ~1 min, cached)."""
    tarball = CACHE / "python-standin-bookworm.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise SystemExit("images: debootstrap is missing (make podman installs it)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        subprocess.run(  # noqa: S603 - fixed command, no shell
            _as_root(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3.11,ca-certificates",
                    "bookworm",
                    str(rootfs),
                    DEBIAN_MIRROR,
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # The official image's interpreter path, and no package caches in the layer.
        script = (
            "set -e; r=$1; "
            "for n in python3.11 python3 python; do ln -sf /usr/bin/python3.11 $r/usr/local/bin/$n; done; "
            "rm -rf $r/var/cache/apt/archives/*.deb $r/var/lib/apt/lists/* $r/var/log/* "
            "$r/usr/share/doc/* $r/usr/share/man/*; "
            'tar -C "$r" --numeric-owner -cf "$2" .'
        )
        partial = tarball.with_suffix(".partial")
        # The paths go in as arguments ($1, $2), never into the script's text.
        subprocess.run(_as_root(["sh", "-c", script, "sh", str(rootfs), str(partial)]), check=True)  # noqa: S603
        subprocess.run(_as_root(["rm", "-rf", str(rootfs)]), check=True)  # noqa: S603
        partial.rename(tarball)
    return tarball


#: PyPI's Simple API (PEP 691, JSON form): what pip itself reads to find a package's files.
SIMPLE_INDEX = "https://pypi.org/simple/uv/"


def uv_wheel_url(index: dict[str, Any], version: str, machine: str) -> tuple[str, str]:
    """(URL, sha256) of uv ``version``'s manylinux wheel for ``machine`` (``x86_64``,
    ``aarch64``) among the ``files`` of PyPI's Simple API page for uv; ``LookupError`` when
    there is none."""
    for file in index["files"]:
        name = file["filename"]
        if (
            name.startswith(f"uv-{version}-")
            and name.endswith(f"_{machine}.whl")
            and "manylinux" in name
            and not file.get("yanked")
        ):
            return file["url"], file["hashes"]["sha256"]
    raise LookupError(f"PyPI has no manylinux {machine} wheel of uv {version}")


def download_uv_wheel(version: str, into: Path) -> Path:
    """The PyPI wheel of ``uv==version`` for this machine, checked against PyPI's sha256.

    Found through PyPI's Simple API with the standard library rather than ``pip download``:
    the environment ``make test`` runs in (made by uv) has no pip, and a ``python3`` found on
    its PATH is that environment's. HTTPS goes through the machine's proxy and CA bundle
    (``HTTPS_PROXY``, ``SSL_CERT_FILE``) as any other download does. Raises ``ValueError`` when
    the bytes do not match the digest, ``OSError`` when PyPI cannot be reached."""
    request = urllib.request.Request(
        SIMPLE_INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (fixed https URL)
        index = json.load(response)
    url, digest = uv_wheel_url(index, version, platform.machine())
    wheel = into / url.rsplit("/", 1)[1]
    with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 (PyPI's own URL)
        data = response.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"{wheel.name}: sha256 differs from PyPI's {digest}")
    wheel.write_bytes(data)
    return wheel


def uv_tarball(version: str) -> Path:
    """A tarball holding only ``/uv``, from the PyPI wheel of ``uv==version``."""
    tarball = CACHE / f"uv-standin-{version}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="uv-") as work:
        wheel = download_uv_wheel(version, Path(work))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".data/scripts/uv"))
            binary = Path(work) / "uv"
            binary.write_bytes(archive.read(member))
        binary.chmod(0o755)
        partial = tarball.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(binary, arcname="uv", filter=_root_owned)
        partial.rename(tarball)
    return tarball


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def ensure_standins(engine: Engine, uv_version: str, *, say: bool = False) -> dict[str, str]:
    """Import both stand-ins into the engine's store unless there already; returns the
    build arguments that select them (``PYTHON_IMAGE``, ``UV_IMAGE``). ``say``: print each
    stand-in made and how long it took (root filesystem or wheel and import), on its own
    line, so it is not counted in the first image's build time."""
    uv_ref = f"{UV_STANDIN_REPOSITORY}:{uv_version}"
    if not engine.image_exists(PYTHON_STANDIN):
        started = time.monotonic()
        engine.run(
            "import",
            "--change",
            "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["python3"]',
            str(python_rootfs_tarball()),
            PYTHON_STANDIN,
        )
        _made(PYTHON_STANDIN, started, say)
    if not engine.image_exists(uv_ref):
        started = time.monotonic()
        engine.run("import", "--change", 'CMD ["/uv"]', str(uv_tarball(uv_version)), uv_ref)
        _made(uv_ref, started, say)
    return {"PYTHON_IMAGE": PYTHON_STANDIN, "UV_IMAGE": uv_ref}


def _made(ref: str, started: float, say: bool) -> None:
    if say:
        print(f"images: stand-in {ref} made in {time.monotonic() - started:.1f}s", flush=True)
