"""CQRS read model (chassis): the checkpoint gauge is the last offset applied, the live step's order, the report, and the service CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import cli
from chassis.messaging.consumer import TopicsNotFound
from chassis.messaging.envelope import Envelope
from chassis.read_model import (
    ReadModel,
    RebuildRefused,
    RebuildReport,
    Tables,
    checkpoint_report,
    project,
    report_checkpoint,
)
from chassis.settings import BaseServiceSettings

PG = postgresql.dialect()  # type: ignore[no-untyped-call]
META = MetaData()
TOTALS = Table("toy_totals", META, Column("owner_id", String, primary_key=True))
ITEMS = Table("toy_items", META, Column("n", Integer, primary_key=True))


def gauge(service: str, projection: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "projection_checkpoint_offset",
        {"service": service, "projection": projection, "topic": topic, "partition": str(partition)},
    )


def envelope(topic: str = "toy.events", partition: int = 0, offset: int = 41) -> Envelope:
    return Envelope.new(
        "ItemAdded", "tests", {}, key="k", topic=topic, partition=partition, offset=offset
    )


async def no_apply(session: AsyncSession, tables: Tables, env: Envelope) -> object:
    return None


def test_the_gauge_after_a_commit_is_the_offset_applied_not_the_next_one() -> None:
    service = f"s{uuid.uuid4().hex[:8]}"
    report_checkpoint(service, "toy", envelope(offset=41))
    assert gauge(service, "toy", "toy.events", 0) == 41
    report_checkpoint(service, "toy", envelope(offset=-1))  # not from Kafka: no position
    assert gauge(service, "toy", "toy.events", 0) == 41


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def all(self) -> list[tuple[Any, ...]]:
        return self.rows


class _CheckpointSession:
    def __init__(self, store: list[tuple[Any, ...]]) -> None:
        self.store = store

    async def execute(self, statement: object) -> _Rows:
        return _Rows(list(self.store))


def _sessions(store: list[tuple[Any, ...]]) -> Any:
    @asynccontextmanager
    async def open_session() -> AsyncIterator[_CheckpointSession]:
        yield _CheckpointSession(store)

    return open_session


async def test_the_periodic_report_publishes_stored_next_offsets_minus_one() -> None:
    service = f"s{uuid.uuid4().hex[:8]}"
    store: list[tuple[Any, ...]] = [
        ("toy", "toy.events", 0, 42),  # next offset 42: offset 41 was the last applied
        ("toy", "toy.events", 1, 1),
        ("toy_rebuild", "toy.events", 0, 7),  # a running rebuild's progress
    ]
    tick = checkpoint_report(_sessions(store), service)
    await tick()
    assert gauge(service, "toy", "toy.events", 0) == 41
    assert gauge(service, "toy", "toy.events", 1) == 0
    assert gauge(service, "toy_rebuild", "toy.events", 0) == 6

    del store[2]  # the rebuild finished and deleted its rows: its series goes too
    await tick()
    assert gauge(service, "toy_rebuild", "toy.events", 0) is None
    assert gauge(service, "toy", "toy.events", 0) == 41


class _Session:
    """Records the SQL a step sends, compiled for PostgreSQL (through the ORM session, or as
    SQL on its connection, as ``chassis.db.CompiledWrite`` sends it)."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self.dialect = PG

    async def execute(self, statement: Any) -> None:
        self.sql.append(str(statement.compile(dialect=PG)))

    async def connection(self) -> _Session:
        return self

    async def exec_driver_sql(self, sql: str, parameters: Any) -> None:
        self.sql.append(sql)


class _Uow:
    def __init__(self, *, first: bool) -> None:
        self.session = _Session()
        self.first = first
        self.inbox: list[tuple[str, str]] = []

    async def first_delivery(self, consumer: str, message_id: str) -> bool:
        self.session.sql.append("inbox")
        self.inbox.append((consumer, message_id))
        return self.first


def toy_model(applied: list[Tables]) -> ReadModel:
    async def apply(session: AsyncSession, tables: Tables, env: Envelope) -> object:
        session_sql: list[str] = session.sql  # type: ignore[attr-defined]
        session_sql.append("apply")
        applied.append(tables)
        return {"changed"}

    return ReadModel(
        name="toy",
        consumer="toy-projector",
        topics=("toy.events",),
        tables=(TOTALS, ITEMS),
        apply=apply,
    )


async def test_project_locks_first_then_inbox_apply_and_the_next_offset() -> None:
    applied: list[Tables] = []
    uow = _Uow(first=True)
    env = envelope(offset=41)
    result = await project(uow, toy_model(applied), env)  # type: ignore[arg-type]
    assert result == {"changed"}
    assert applied == [{"toy_totals": TOTALS, "toy_items": ITEMS}]  # the live tables, by name
    lock, inbox, apply, checkpoint = uow.session.sql
    assert "pg_advisory_xact_lock_shared(hashtextextended" in lock
    assert (inbox, apply) == ("inbox", "apply")
    assert "projection_checkpoints" in checkpoint
    assert "greatest" in checkpoint  # never backwards
    assert uow.inbox == [("toy-projector", env.id)]


async def test_project_of_a_duplicate_returns_none_and_skips_apply() -> None:
    applied: list[Tables] = []
    uow = _Uow(first=False)
    assert await project(uow, toy_model(applied), envelope()) is None  # type: ignore[arg-type]
    assert applied == []
    lock, inbox, checkpoint = uow.session.sql  # the checkpoint still moves past it
    assert "advisory" in lock
    assert inbox == "inbox"
    assert "projection_checkpoints" in checkpoint


def test_a_read_model_needs_distinct_tables_and_names_postgresql_can_hold() -> None:
    with pytest.raises(ValueError, match="distinct"):
        ReadModel("toy", "c", ("t",), (TOTALS, TOTALS), no_apply)
    long = Table("x" * 60, MetaData(), Column("id", Integer, primary_key=True))
    with pytest.raises(ValueError, match="longer"):
        ReadModel("toy", "c", ("t",), (long,), no_apply)


def test_the_report_is_plain_json() -> None:
    report = RebuildReport(
        read_model="toy",
        events_applied=8,
        events_skipped=1,
        rows={"toy_totals": 3, "toy_items": 5},
        end_offsets={"toy.events:0": 9},
    )
    assert json.loads(json.dumps(report.to_json())) == {
        "read_model": "toy",
        "events_applied": 8,
        "events_skipped": 1,
        "rows": {"toy_totals": 3, "toy_items": 5},
        "end_offsets": {"toy.events:0": 9},
    }


# ------------------------------------------------------------------------------ service_cli


class Calls:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[tuple[Any, ...]] = []
        monkeypatch.setattr(cli, "upgrade", lambda *a: self.log.append(("upgrade", *a)))
        monkeypatch.setattr(cli, "configure_logging", lambda *a: self.log.append(("logging", *a)))

    def settings(self) -> BaseServiceSettings:
        return BaseServiceSettings(SERVICE_NAME="toy", DATABASE_URL="postgresql+asyncpg://h/toy")

    def run(self, argv: list[str], **kw: Any) -> None:
        cli.service_cli(
            "toy",
            self.settings,
            api=lambda: self.log.append(("api",)),
            worker=lambda: self.log.append(("worker",)),
            service_root=Path("/srv/toy"),
            argv=argv,
            **kw,
        )


@pytest.mark.parametrize("command", ["api", "worker"])
def test_the_process_types_start_their_process(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    calls = Calls(monkeypatch)
    calls.run([command])
    assert calls.log == [(command,)]


def test_migrate_logs_upgrades_every_head_then_runs_the_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Calls(monkeypatch)

    async def seed(settings: BaseServiceSettings) -> None:
        calls.log.append(("after_migrate", settings.SERVICE_NAME))

    calls.run(["migrate"])
    calls.run(["migrate"], after_migrate=seed)
    step = [
        ("logging", "toy", "INFO"),
        ("upgrade", Path("/srv/toy"), "postgresql+asyncpg://h/toy", "heads"),
    ]
    assert calls.log == [*step, *step, ("after_migrate", "toy")]


def test_rebuild_read_model_prints_the_report_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = Calls(monkeypatch)
    report = RebuildReport("toy", 3, 1, {"toy_totals": 2}, {"toy.events:0": 4})

    def rebuild(settings: BaseServiceSettings) -> Coroutine[Any, Any, RebuildReport]:
        async def run() -> RebuildReport:
            calls.log.append(("rebuild", settings.SERVICE_NAME))
            return report

        return run()

    calls.run(["rebuild-read-model"], rebuild=rebuild)
    assert calls.log == [("logging", "toy", "INFO"), ("rebuild", "toy")]
    assert json.loads(capsys.readouterr().out) == report.to_json()


def test_a_refused_rebuild_exits_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)

    async def refused(settings: BaseServiceSettings) -> RebuildReport:
        raise RebuildRefused("another rebuild of toy is running")

    with pytest.raises(SystemExit) as exit_:
        calls.run(["rebuild-read-model"], rebuild=refused)
    assert "another rebuild of toy is running" in str(exit_.value.code)


def test_without_a_read_model_there_is_no_rebuild_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = Calls(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        calls.run(["rebuild-read-model"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _failing(exc: Exception) -> Any:
    def rebuild(settings: BaseServiceSettings) -> Coroutine[Any, Any, RebuildReport]:
        async def run() -> RebuildReport:
            raise exc

        return run()

    return rebuild


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)"), "unreachable"),
        (TopicsNotFound(["toy.events"]), "topics not found: toy.events"),
        (RebuildRefused("another rebuild of toy is running"), "refused: another rebuild"),
    ],
)
def test_rebuild_read_model_names_what_an_operator_can_fix_in_one_line(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, reason: str
) -> None:
    calls = Calls(monkeypatch)
    with pytest.raises(SystemExit) as exited:
        calls.run(["rebuild-read-model"], rebuild=_failing(exc))
    assert isinstance(exited.value.code, str)  # printed to stderr, exit status 1
    assert exited.value.code.startswith("toy rebuild-read-model ")
    assert reason in exited.value.code


def test_migrate_with_the_database_unreachable_exits_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Calls(monkeypatch)

    def unreachable(*args: Any) -> None:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")

    monkeypatch.setattr(cli, "upgrade", unreachable)
    with pytest.raises(SystemExit, match="toy migrate failed: a dependency is unreachable"):
        calls.run(["migrate"])


def test_an_admin_process_keeps_the_traceback_of_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    with pytest.raises(KeyError):
        calls.run(["rebuild-read-model"], rebuild=_failing(KeyError("bug")))
