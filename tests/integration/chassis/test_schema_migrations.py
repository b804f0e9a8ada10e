"""Versioned chassis schema: each history replays to its models; chassis revisions reach old databases."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from board.adapters.tables import metadata as board_metadata
from chassis import schema_migrations
from chassis.db import chassis_metadata, create_engine
from chassis.migrations import alembic_config, upgrade
from member.adapters.tables import metadata as member_metadata
from qna.adapters.tables import metadata as qna_metadata
from saga.store import metadata as saga_metadata
from tests.support.infra import REPO, Infra

pytestmark = pytest.mark.integration


def _service_metadata(service: str) -> MetaData:
    """The service's own tables, as its ``migrations/env.py`` passes them to Alembic."""
    return {
        "member": member_metadata,
        "board": board_metadata,
        "qna": qna_metadata,
        "saga": saga_metadata,
    }[service]


#: Service name -> the folder holding its alembic.ini and migrations/.
ROOTS = {
    "member": REPO / "services" / "member",
    "board": REPO / "services" / "board",
    "qna": REPO / "services" / "qna",
    "saga": REPO / "saga",
}
SERVICES = sorted(ROOTS)


def _diff(connection: Connection, service: str) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    # A sequence of MetaData works as it does for target_metadata; the hint names only one.
    targets = [_service_metadata(service), chassis_metadata]
    return list(compare_metadata(context, targets))  # type: ignore[arg-type]


async def _run_sync(database_url: str, fn: Any, *args: Any) -> Any:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn, *args)
    finally:
        await engine.dispose()


def _catalog(
    connection: Connection, tables: list[str], *, column_order: bool = True
) -> dict[str, list[tuple[Any, ...]]]:
    """``tables`` as PostgreSQL stores them: columns (with defaults and identity), constraints
    and indexes, each by name with its definition. ``column_order=False`` ignores the order of
    columns (``add_column`` appends, a model may declare the column elsewhere)."""
    position = "ordinal_position" if column_order else "0"
    columns = connection.execute(
        text(
            f"SELECT table_name, column_name, {position}, data_type, character_maximum_length, "
            "is_nullable, column_default, is_identity, identity_generation "
            "FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = ANY(:tables) "
            "ORDER BY table_name, 3, column_name"
        ),
        {"tables": tables},
    )
    constraints = connection.execute(
        text(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
            "FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY(:tables) "
            "ORDER BY 1, 2"
        ),
        {"tables": tables},
    )
    indexes = connection.execute(
        text(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = 'public' AND tablename = ANY(:tables) ORDER BY 1, 2"
        ),
        {"tables": tables},
    )
    return {
        "columns": [tuple(r) for r in columns],
        "constraints": [tuple(r) for r in constraints],
        "indexes": [tuple(r) for r in indexes],
    }


CHASSIS_TABLES = sorted(chassis_metadata.tables)


def _chassis_catalog(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return _catalog(connection, CHASSIS_TABLES)


def _versions(connection: Connection) -> set[str]:
    return set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _service_head(cfg: Config) -> str:
    """The head of the service's own revisions (the other head, if any, is the chassis one)."""
    script = ScriptDirectory.from_config(cfg)
    chassis = {r.revision for r in script.walk_revisions() if "chassis" in r.branch_labels}
    [head] = [h for h in script.get_heads() if h not in chassis]
    return head


async def _build_as_before_the_chassis_branch(service: str, database_url: str) -> str:
    """A database as the code before the chassis branch left it: the chassis tables made by
    ``chassis_metadata.create_all`` (what each service's revision 0001 called), the service's
    tables, ``alembic_version`` at the service's head alone. Returns that head."""
    metadata = _service_metadata(service)

    def build(connection: Connection) -> None:
        chassis_metadata.create_all(connection)
        metadata.create_all(connection)

    await _run_sync(database_url, build)
    cfg = alembic_config(ROOTS[service], database_url)
    head = _service_head(cfg)
    await asyncio.to_thread(command.stamp, cfg, head)
    return head


@pytest.mark.parametrize("service", SERVICES)
async def test_a_fresh_database_migrated_to_head_matches_the_models(
    service: str, database_url: str
) -> None:
    """Autogenerate finds nothing between the replayed history and the service's models plus
    the chassis tables: the migrations and the code describe one schema."""
    await asyncio.to_thread(upgrade, ROOTS[service], database_url)
    assert await _run_sync(database_url, _diff, service) == []


@pytest.mark.parametrize("service", SERVICES)
async def test_a_fresh_database_migrated_to_head_has_the_catalog_the_models_create(
    service: str, infra: Infra, database_url: str
) -> None:
    """What autogenerate does not compare (check constraints, the text of index predicates and
    expressions, identity columns) compared in PostgreSQL's own words: the replayed history
    and ``create_all`` of the models give the same catalog."""
    metadata = _service_metadata(service)
    tables = sorted([*metadata.tables, *chassis_metadata.tables])

    def catalog(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
        return _catalog(connection, tables, column_order=False)

    def create(connection: Connection) -> None:
        chassis_metadata.create_all(connection)
        metadata.create_all(connection)

    await asyncio.to_thread(upgrade, ROOTS[service], database_url)
    models_url = await infra.create_database()
    try:
        await _run_sync(models_url, create)
        from_models = await _run_sync(models_url, catalog)
    finally:
        await infra.drop_database(models_url)
    assert await _run_sync(database_url, catalog) == from_models


async def test_the_chassis_base_revision_creates_what_create_all_created(
    infra: Infra, database_url: str
) -> None:
    """The first chassis revision is the schema ``create_all`` gave every database before it:
    same columns, defaults, identity, constraint and index names and definitions."""
    old_url = await infra.create_database()
    try:
        await _run_sync(old_url, chassis_metadata.create_all)
        await asyncio.to_thread(
            upgrade, ROOTS["member"], database_url, schema_migrations.BASE_REVISION
        )
        migrated = await _run_sync(database_url, _chassis_catalog)
        assert migrated == await _run_sync(old_url, _chassis_catalog)
        assert len(migrated["columns"]) == sum(len(t.c) for t in chassis_metadata.tables.values())
    finally:
        await infra.drop_database(old_url)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_database_built_before_the_chassis_branch_upgrades_unchanged(
    service: str, database_url: str
) -> None:
    """Adoption: the chassis base revision is an ancestor of the service head the database
    records, so ``migrate`` runs nothing (it would fail on the existing tables if it did)."""
    head = await _build_as_before_the_chassis_branch(service, database_url)
    before = await _run_sync(database_url, _chassis_catalog)
    await asyncio.to_thread(upgrade, ROOTS[service], database_url)
    assert await _run_sync(database_url, _chassis_catalog) == before
    assert await _run_sync(database_url, _versions) == {head}


NEW_CHASSIS_REVISION = """\
    \"\"\"Test chassis revision: a column on the outbox.\"\"\"

    import sqlalchemy as sa
    from alembic import op

    revision = "chassis_9001"
    down_revision = "{down}"
    branch_labels = None
    depends_on = None


    def upgrade() -> None:
        op.add_column("outbox_messages", sa.Column("note", sa.Text(), nullable=True))


    def downgrade() -> None:
        op.drop_column("outbox_messages", "note")
    """


@pytest.mark.parametrize("service", SERVICES)
async def test_a_new_chassis_revision_reaches_old_and_fresh_databases(
    service: str, infra: Infra, database_url: str, tmp_path: Path
) -> None:
    """A change to a chassis table is one revision in the chassis branch; ``migrate`` applies it
    to a database built before the branch existed and to a fresh one alike."""
    probe = alembic_config(ROOTS[service], database_url)
    [chassis_head] = ScriptDirectory.from_config(probe).get_revisions("chassis@head")
    assert chassis_head is not None
    (tmp_path / "chassis_9001_note.py").write_text(
        textwrap.dedent(NEW_CHASSIS_REVISION).format(down=chassis_head.revision)
    )
    head = await _build_as_before_the_chassis_branch(service, database_url)
    fresh_url = await infra.create_database()
    try:
        for url in (database_url, fresh_url):
            cfg = alembic_config(ROOTS[service], url)
            locations = cfg.get_main_option("version_locations")
            cfg.set_main_option("version_locations", f"{locations}{os.pathsep}{tmp_path}")
            await asyncio.to_thread(command.upgrade, cfg, "heads")
            columns = {c[1] for c in (await _run_sync(url, _chassis_catalog))["columns"]}
            assert "note" in columns
            assert await _run_sync(url, _versions) == {head, "chassis_9001"}
    finally:
        await infra.drop_database(fresh_url)
