"""Admin process (12-factor XII): schema migrations with Alembic, run as a one-off ``<service> migrate``.

Each service's history has two branches in one ``alembic_version`` table: its own revisions
(``<service root>/migrations/versions``) and the chassis branch (label ``chassis``,
``chassis/schema_migrations/versions``) holding the outbox, inbox, saga command log,
idempotency and checkpoint tables. A service's revision 0001 ``depends_on`` the chassis base
revision, and ``upgrade`` targets ``heads``, so a new chassis revision reaches every service
database on its next ``migrate``.
"""

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

from chassis import schema_migrations
from chassis.db import chassis_metadata


def alembic_config(service_root: Path, database_url: str) -> Config:
    """The Alembic configuration of the service at ``service_root`` (the folder holding
    ``alembic.ini`` and ``migrations/``): its own revisions plus the chassis branch."""
    cfg = Config(str(service_root / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_root / "migrations"))
    # version_locations replaces the default <script_location>/versions, so both are named.
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option(
        "version_locations",
        os.pathsep.join(
            [str(service_root / "migrations" / "versions"), str(schema_migrations.VERSIONS)]
        ),
    )
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(service_root: Path, database_url: str, revision: str = "heads") -> None:
    """Apply migrations up to ``revision``: by default every head, the service's and the
    chassis branch's (two heads whenever a chassis revision no service revision depends on)."""
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
