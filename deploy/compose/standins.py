"""Local stand-ins for docker-compose.yml's infrastructure images, for machines no registry answers.

    python -m deploy.compose.standins      # the images to use, building stand-ins if needed

docker-compose.yml names the official images through variables whose defaults stay the
official ones: ``${POSTGRES_IMAGE:-postgres:…}``, ``${KAFKA_IMAGE:-apache/kafka:…}``,
``${REDIS_IMAGE:-redis:…}``. Where the engine has the official image or can pull it, it is
used. Otherwise a stand-in is built on the debootstrap Python base of
``deploy/images/standins.py`` from Debian's packages and Maven Central, honouring the part
of the official image's documented contract that the compose file relies on:

- ``postgres``: Debian 12's PostgreSQL 15 (``deploy/compose/postgres``); POSTGRES_USER,
  POSTGRES_PASSWORD(_FILE), POSTGRES_DB, POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD,
  ``/docker-entrypoint-initdb.d``, PGDATA in ``/var/lib/postgresql/data``;
- ``kafka``: the broker jars of the very version the compose file names, from Maven
  Central (``deploy/compose/kafka/pom.xml``), on Debian's Java 17; KAFKA_* variables turned
  into ``server.properties`` and CLUSTER_ID formatting by Kafka's own
  ``kafka.docker.KafkaDockerWrapper``, the tools under ``/opt/kafka/bin``;
- ``redis``: Debian 12's Redis 7.0; ``redis-server`` options as the command, ``/data``,
  REDISCLI_AUTH for redis-cli.

Each stand-in carries a label with a digest of its inputs (its folder, its base image, the
jars), and is rebuilt only when they change. Returns the variables that select them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.images.build import INPUTS_LABEL, dockerfile_defaults, have_or_pull, image_label
from deploy.images.engine import ROOT, Engine, EngineError, select_engine
from deploy.images.standins import ensure_standins

HERE = ROOT / "deploy" / "compose"
COMPOSE_FILE = ROOT / "docker-compose.yml"
CONTEXTS = ROOT / ".local" / "compose" / "context"
KAFKA_LIBS = ROOT / ".local" / "compose" / "kafka-libs"


@dataclass(frozen=True)
class InfraImage:
    """One infrastructure image of docker-compose.yml and its stand-in."""

    name: str  # the folder under deploy/compose
    variable: str  # the compose variable that names the image
    standin_repository: str

    def official(self) -> str:
        """The compose file's default for the variable: the official image."""
        return compose_image_defaults()[self.variable]

    def standin_ref(self) -> str:
        """``localhost/…`` (never pulled), tagged with what it really holds."""
        if self.name == "kafka":
            return f"{self.standin_repository}:{kafka_version()}"
        return f"{self.standin_repository}:bookworm"


INFRA_IMAGES = (
    InfraImage("postgres", "POSTGRES_IMAGE", "localhost/msa-board/postgres-standin"),
    InfraImage("kafka", "KAFKA_IMAGE", "localhost/msa-board/kafka-standin"),
    InfraImage("redis", "REDIS_IMAGE", "localhost/msa-board/redis-standin"),
)


def compose_image_defaults() -> dict[str, str]:
    """``{"POSTGRES_IMAGE": "postgres:17.7-bookworm", …}`` from docker-compose.yml's text."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    found = dict(re.findall(r"\$\{([A-Z_]+_IMAGE):-([^}]+)\}", text))
    missing = {i.variable for i in INFRA_IMAGES} - set(found)
    if missing:
        raise ValueError(f"docker-compose.yml names no default for {sorted(missing)}")
    return found


def kafka_version() -> str:
    """The Kafka release of the official image the compose file names (``apache/kafka:4.4.0``)."""
    return compose_image_defaults()["KAFKA_IMAGE"].rpartition(":")[2]


def kafka_libs() -> Path:
    """The broker and tool jars of ``kafka_version()`` (Maven Central, cached)."""
    version = kafka_version()
    pom = HERE / "kafka" / "pom.xml"
    stamp = hashlib.sha256(pom.read_bytes() + version.encode()).hexdigest()
    marker = KAFKA_LIBS / ".inputs.sha256"
    if marker.is_file() and marker.read_text(encoding="utf-8") == stamp:
        return KAFKA_LIBS
    if shutil.which("mvn") is None:
        raise SystemExit("compose: maven is missing (apt-get install maven, or make infra-up)")
    shutil.rmtree(KAFKA_LIBS, ignore_errors=True)
    KAFKA_LIBS.mkdir(parents=True)
    # Output captured (shown on failure only): even in batch mode without colour, Maven
    # writes stray terminal resets (ESC[0m) to stderr, which would land in make's output.
    done = subprocess.run(  # noqa: S603 - fixed command, no shell
        [  # noqa: S607
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={KAFKA_LIBS}",
            f"-Dkafka.version={version}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"compose: mvn exited {done.returncode}\n{(done.stdout + done.stderr)[-3000:]}"
        )
    marker.write_text(stamp, encoding="utf-8")
    return KAFKA_LIBS


def build_context(image: InfraImage) -> Path:
    """The folder the stand-in is built from: its own folder, plus the jars for Kafka."""
    source = HERE / image.name
    if image.name != "kafka":
        return source
    context = CONTEXTS / image.name
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(source, context, ignore=shutil.ignore_patterns("pom.xml"))
    shutil.copytree(kafka_libs(), context / "libs", ignore=shutil.ignore_patterns(".*"))
    return context


def inputs_digest(context: Path, base_id: str) -> str:
    """SHA-256 over the base image's id and every file (path, mode, bytes) of the context."""
    digest = hashlib.sha256(f"base {base_id}\n".encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        rel = path.relative_to(context).as_posix()
        digest.update(f"file {rel} {path.stat().st_mode & 0o111:o}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_standin(engine: Engine, image: InfraImage, base: str) -> tuple[str, float, bool]:
    """Build one stand-in unless up to date; (reference, seconds, rebuilt)."""
    started = time.monotonic()
    ref = image.standin_ref()
    context = build_context(image)
    base_id = engine.run("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    inputs = inputs_digest(context, base_id)
    if image_label(engine, ref, INPUTS_LABEL) == inputs:
        return ref, time.monotonic() - started, False
    argv = ["build", "-t", ref, "--label", f"{INPUTS_LABEL}={inputs}"]
    argv += ["--build-arg", f"BASE_IMAGE={base}"]
    if engine.name == "podman":
        argv += ["--pull=never", "--layers"]
    engine.run(*argv, str(context))
    return ref, time.monotonic() - started, True


def select_infra_images(engine: Engine, *, say: bool = True) -> dict[str, str]:
    """The compose variables to set (empty when every official image is there or pullable)."""
    chosen: dict[str, str] = {}
    base: str | None = None
    for image in INFRA_IMAGES:
        official = image.official()
        if have_or_pull(engine, official):
            continue
        if base is None:
            uv_version = dockerfile_defaults()["UV_IMAGE"].rpartition(":")[2]
            base = ensure_standins(engine, uv_version, say=say)["PYTHON_IMAGE"]
        ref, seconds, rebuilt = build_standin(engine, image, base)
        if say:
            state = f"built in {seconds:.0f}s" if rebuilt else "up to date"
            print(f"compose: {official} cannot be pulled: stand-in {ref} ({state})", flush=True)
        chosen[image.variable] = ref
    return chosen


def main() -> int:
    engine = select_engine(os.environ.get("CONTAINER_ENGINE") or None)
    if engine is None:
        print("compose: neither `docker info` nor podman works (make podman installs podman)")
        return 2
    try:
        chosen = select_infra_images(engine)
    except EngineError as error:
        print(f"compose: {error}", file=sys.stderr)
        return 1
    for variable, ref in chosen.items():
        print(f"{variable}={ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
