"""The infrastructure stand-ins keep the official images' contract, beyond what the journey uses.

Each stand-in of deploy/compose runs alone in the engine and is held to the documented
behaviour of the image it replaces: postgres's variables, its init-script directory (run
once, never on a restart) and password authentication over TCP; redis's command form,
``REDISCLI_AUTH`` and its non-root user; Kafka's ``KAFKA_*``-to-properties conversion with
the compose file's own environment, and a restart on an already formatted volume. Where the
official images are in use (a registry answers), there is no stand-in to test.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from deploy.images.engine import Engine
from tests.compose.stack import COMPOSE_FILE

pytestmark = [pytest.mark.compose, pytest.mark.timeout(600)]


def standin(images: dict[str, str], variable: str) -> str:
    ref = images.get(variable)
    if ref is None:
        pytest.skip(f"{variable}: the official image is in use, no stand-in to test")
    return ref


@contextlib.contextmanager
def container(
    engine: Engine, image: str, options: list[str], command: tuple[str, ...] = ()
) -> Iterator[str]:
    """A detached container with engine ``options``, removed (with its anonymous volumes) afterwards."""
    name = f"standin-test-{uuid.uuid4().hex[:8]}"
    try:
        engine.run("run", "--detach", "--name", name, *options, image, *command, timeout=120)
        yield name
    finally:
        # Run to its end even when Ctrl-C comes meanwhile (deploy/images/engine.py).
        engine.run("rm", "--force", "--volumes", name, check=False, timeout=120, shielded=True)


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f}s"
        time.sleep(0.5)


def sh(engine: Engine, name: str, script: str) -> subprocess.CompletedProcess[str]:
    return engine.run("exec", name, "sh", "-c", script, check=False, timeout=120)


def logs(engine: Engine, name: str) -> str:
    done = engine.run("logs", name, check=False)
    return done.stdout + done.stderr


# ------------------------------------------------------------------ postgres


def test_postgres_standin_honours_the_official_contract(
    compose_engine: Engine, compose_images: dict[str, str], tmp_path: Path
) -> None:
    image = standin(compose_images, "POSTGRES_IMAGE")
    initdb = tmp_path / "initdb"
    initdb.mkdir()
    (initdb / "10-seed.sql").write_text(
        "CREATE TABLE seeded (x int); INSERT INTO seeded VALUES (1);\n"
    )
    (initdb / "20-note.sh").write_text('echo "init script sourced for $POSTGRES_DB"\n')
    initdb.chmod(0o755)
    volume = f"standin-test-pg-{uuid.uuid4().hex[:8]}"
    env = ["-e", "POSTGRES_USER=alice", "-e", "POSTGRES_PASSWORD=s3cret", "-e", "POSTGRES_DB=shop"]
    mounts = [
        "--volume",
        f"{initdb}:/docker-entrypoint-initdb.d:ro",
        "--volume",
        f"{volume}:/var/lib/postgresql/data",
    ]
    ready = 'pg_isready -q -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
    # Through the container's own network address: loopback is trusted, as in the official
    # image (initdb's defaults); every other host must give the password.
    query = (
        "PGPASSWORD={pw} psql -h \"$(hostname -i | cut -d' ' -f1)\" -U alice -d shop "
        "-tAc 'SELECT count(*) FROM seeded'"
    )
    try:
        with container(compose_engine, image, [*env, *mounts]) as name:
            eventually(
                lambda: sh(compose_engine, name, ready).returncode == 0, 90, "postgres ready"
            )
            counted = sh(compose_engine, name, query.format(pw="s3cret"))
            assert counted.stdout.strip() == "1", counted.stderr
            refused = sh(compose_engine, name, query.format(pw="wrong"))
            assert refused.returncode != 0
            assert "password authentication failed" in refused.stderr
            whoami = sh(compose_engine, name, "stat -c %U /proc/1")
            assert whoami.stdout.strip() == "postgres"

            # A restart keeps the data and runs no init script again.
            compose_engine.run("restart", name, timeout=120)
            eventually(
                lambda: sh(compose_engine, name, ready).returncode == 0, 90, "postgres again"
            )
            assert sh(compose_engine, name, query.format(pw="s3cret")).stdout.strip() == "1"
            text = logs(compose_engine, name)
            assert text.count("running /docker-entrypoint-initdb.d/10-seed.sql") == 1, text
            assert text.count("init script sourced for shop") == 1, text

        # Without a password (and without trust) it refuses to initialise, as the official one.
        done = compose_engine.run("run", "--rm", image, check=False, timeout=120)
        assert done.returncode != 0
        assert "POSTGRES_PASSWORD" in done.stdout + done.stderr
    finally:
        compose_engine.run("volume", "rm", "--force", volume, check=False, shielded=True)


# ------------------------------------------------------------------ redis


def test_redis_standin_honours_the_official_contract(
    compose_engine: Engine, compose_images: dict[str, str]
) -> None:
    image = standin(compose_images, "REDIS_IMAGE")
    # The compose file's form: the full redis-server command line, REDISCLI_AUTH for the CLI.
    command = ("redis-server", "--requirepass", "pw", "--appendonly", "yes")
    with container(compose_engine, image, ["-e", "REDISCLI_AUTH=pw"], command) as name:
        eventually(
            lambda: sh(compose_engine, name, "redis-cli ping").stdout.strip() == "PONG", 30, "redis"
        )
        wrong = sh(compose_engine, name, "REDISCLI_AUTH=wrong redis-cli ping")
        assert "PONG" not in wrong.stdout
        assert sh(compose_engine, name, "stat -c %U /proc/1").stdout.strip() == "redis"
        # Append-only persistence in /data, which the redis user owns.
        assert (
            sh(compose_engine, name, "redis-cli set k v && test -d /data/appendonlydir").returncode
            == 0
        )
    # Options alone mean redis-server with them.
    with container(compose_engine, image, [], ("--port", "6380")) as name:
        eventually(
            lambda: sh(compose_engine, name, "redis-cli -p 6380 ping").stdout.strip() == "PONG",
            30,
            "redis -p",
        )


# ------------------------------------------------------------------ kafka


def test_kafka_standin_takes_the_compose_files_environment(
    compose_engine: Engine, compose_images: dict[str, str]
) -> None:
    image = standin(compose_images, "KAFKA_IMAGE")
    kafka = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]["kafka"]
    env = [arg for key, value in kafka["environment"].items() for arg in ("-e", f"{key}={value}")]
    volume = f"standin-test-kafka-{uuid.uuid4().hex[:8]}"
    health = kafka["healthcheck"]["test"][1]
    try:
        # The advertised listener names the service; the container answers to that name.
        options = ["--hostname", "kafka", "--volume", f"{volume}:/var/lib/kafka/data", *env]
        with container(compose_engine, image, options) as name:
            eventually(
                lambda: sh(compose_engine, name, health).returncode == 0, 180, "kafka healthy"
            )
            config = sh(compose_engine, name, "cat /opt/kafka/config/server.properties").stdout
            assert "auto.create.topics.enable=false" in config
            assert "advertised.listeners=PLAINTEXT://kafka:9092" in config
            assert "heap.opts" not in config  # a JVM setting, never a broker property
            meta = sh(compose_engine, name, "cat /var/lib/kafka/data/meta.properties").stdout
            assert f"cluster.id={kafka['environment']['CLUSTER_ID']}" in meta
            assert sh(compose_engine, name, "stat -c %u /proc/1").stdout.strip() == "1000"

            # A restart finds the volume formatted and starts all the same.
            compose_engine.run("restart", name, timeout=120)
            eventually(lambda: sh(compose_engine, name, health).returncode == 0, 180, "kafka again")
            assert logs(compose_engine, name).count("===> Launching") == 2
    finally:
        compose_engine.run("volume", "rm", "--force", volume, check=False, shielded=True)
