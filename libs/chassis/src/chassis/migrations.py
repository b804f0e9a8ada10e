"""Admin process (12-factor XII): schema migrations with Alembic, run as a one-off ``<service> migrate``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from chassis.db import chassis_metadata


def alembic_config(service_root: Path, database_url: str) -> Config:
    cfg = Config(str(service_root / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_root / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(service_root: Path, database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(service_root, database_url), revision)


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py`` (online, async engine)."""
    cfg = context.config
    url = cfg.attributes.get("database_url") or os.environ["DATABASE_URL"]

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=[target_metadata, chassis_metadata],
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        section: dict[str, Any] = {"sqlalchemy.url": url}
        engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


def create_chassis_tables(connection: Connection) -> None:
    """Outbox, inbox, saga command log, idempotency keys and projection checkpoints."""
    chassis_metadata.create_all(connection)


def drop_chassis_tables(connection: Connection) -> None:
    chassis_metadata.drop_all(connection)
