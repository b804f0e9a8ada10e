"""Test infrastructure: local servers (deploy/local) or testcontainers, chosen by MSA_TEST_INFRA."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Infra:
    """Where the real Postgres, Kafka and Redis of this test run are."""

    mode: str
    pg_admin_url: str  # postgresql://superuser:pw@host:port/postgres
    kafka_bootstrap: str
    redis_url: str
    #: The broker's SASL/PLAIN listener (local mode only; user msa, see deploy/local).
    kafka_sasl_bootstrap: str | None = None

    def database_url(self, name: str, *, driver: str = "postgresql+asyncpg") -> str:
        parts = urlsplit(self.pg_admin_url)
        return urlunsplit((driver, parts.netloc, f"/{name}", "", ""))

    async def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its SQLAlchemy asyncpg URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.pg_admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        db = await asyncpg.connect(self.database_url(name, driver="postgresql"))
        try:
            await db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        finally:
            await db.close()
        return self.database_url(name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        conn = await asyncpg.connect(self.pg_admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def selected_mode() -> str:
    mode = os.environ.get("MSA_TEST_INFRA", "").strip().lower()
    if mode in ("local", "docker"):
        return mode
    return "docker" if docker_available() else "local"


@contextmanager
def provide_infra() -> Iterator[Infra]:
    """Local mode reads the addresses from the environment (``make test`` exports
    ``deploy/local/local.env``); docker mode starts throwaway containers."""
    mode = selected_mode()
    if mode == "local":
        yield Infra(
            mode="local",
            pg_admin_url=os.environ.get(
                "PG_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:55432/postgres"
            ),
            kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0"),
            kafka_sasl_bootstrap=os.environ.get("KAFKA_SASL_BOOTSTRAP_SERVERS", "127.0.0.1:9094"),
        )
        return
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with ExitStack() as stack:
        pg = stack.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
        kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft())
        redis = stack.enter_context(RedisContainer("redis:7.4-alpine"))
        host = redis.get_container_host_ip()
        port = redis.get_exposed_port(6379)
        yield Infra(
            mode="docker",
            pg_admin_url=pg.get_connection_url(),
            kafka_bootstrap=kafka.get_bootstrap_server(),
            redis_url=f"redis://{host}:{port}/0",
        )


async def wait_for(
    predicate: object, timeout: float = 20.0, interval: float = 0.1, message: str = "condition"
) -> object:
    """Poll an async callable until it returns a truthy value (eventual consistency)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while loop.time() < deadline:
        last = await predicate()  # type: ignore[operator]
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last={last!r}")
