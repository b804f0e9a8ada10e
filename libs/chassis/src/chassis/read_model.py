"""CQRS read model: the live projector step, the checkpoint gauge, and the two-phase rebuild-and-swap.

A read model is a set of tables a service derives from event topics. It is described once, as a
:class:`ReadModel`, and the chassis does the rest the same way in every service:

- **live** (:func:`project`, in a consumer handler): the inbox, the service's ``apply`` to the
  live tables and the projection checkpoint commit together, under a *shared* advisory lock
  (:func:`exclude_rebuild`);
- **observed**: the gauge ``projection_checkpoint_offset`` is the last offset applied,
  :func:`report_checkpoint` after each commit and :func:`checkpoint_report` periodically from the
  stored rows (which hold the *next* offset, hence ``next_offset - 1``);
- **rebuilt** (:func:`rebuild`, the admin process ``<service> rebuild-read-model``): the topics are
  replayed from the beginning into fresh copies of the tables, which then replace the live ones.

Why the rebuild runs in two phases, beside the live projector: every projection is a function of
the *set* of events seen, not of their order or multiplicity (docs/CONVENTIONS.md "Failures of
consumers"; chassis.child_sets). So the long replay (phase 1) needs no lock and no long
transaction: the live projector keeps the live tables current meanwhile. Only the short catch-up
of what arrived during the replay, and the swap, run in one transaction that holds the
read-model lock exclusively (phase 2); an event that both the live projector and the catch-up
applied changes nothing the second time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import MetaData, Table, Text, bindparam, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from chassis.checkpoints import save_checkpoint
from chassis.child_sets import mark_single_writer
from chassis.db import (
    CompiledWrite,
    UnitOfWork,
    create_engine,
    create_session_factory,
    projection_checkpoint_table,
    utcnow,
)
from chassis.list_counts import ListCounts
from chassis.logging import get_logger
from chassis.messaging.connection import KafkaTarget
from chassis.messaging.consumer import replay
from chassis.messaging.envelope import Envelope
from chassis.messaging.failures import Failure, classify
from chassis.metrics import PROJECTION_CHECKPOINT
from chassis.settings import BaseServiceSettings

log = get_logger(__name__)

#: Live table name -> the Table to write: the live table, or its fresh ``<name>_rebuild`` copy.
Tables = Mapping[str, Table]

#: Suffix of a rebuild's fresh tables and of its own checkpoint rows.
REBUILD_SUFFIX = "_rebuild"
_MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names (NAMEDATALEN - 1)

#: After the replay, catch-up passes run without the lock until one of them finds at most
#: ``LOCKED_CATCH_UP_EVENTS`` new events (at most ``UNLOCKED_CATCH_UP_PASSES`` passes), so the
#: catch-up that holds the live projector is only what arrived during the last pass.
UNLOCKED_CATCH_UP_PASSES = 5
LOCKED_CATCH_UP_EVENTS = 100


@dataclass(frozen=True)
class ReadModel:
    """What a service declares about one read model; the chassis runs it live and rebuilds it.

    - ``name``: the projection's checkpoint name and its lock key (``"post_summaries"``);
    - ``consumer``: the inbox consumer name, which is the live consumer's group id;
    - ``topics``: the logical topic names it reads (physical ones via ``settings.topic()``);
    - ``tables``: the live tables, parents before children;
    - ``apply(session, tables, env)``: the projection of one event into ``tables`` (live or
      fresh). It must be a function of the set of events (a duplicate changes nothing), and it
      raises ``PermanentFailure`` or ``pydantic.ValidationError`` for an event it can never
      apply (dead-lettered live, skipped by a rebuild). Its result is handed back by
      :func:`project`;
    - ``before_swap(session, fresh, started_at)``: runs in the swap transaction after the
      catch-up, with the fresh tables; may fill them from the write side, or raise
      :class:`RebuildRefused` to keep the live tables. ``started_at`` is when the rebuild began
      (UTC);
    - ``after_swap()``: runs once the swap is committed (e.g. invalidating a cache);
    - ``counts``: the list counters among ``tables`` (``chassis.list_counts``), which ``apply``
      keeps and the rebuild recounts from the fresh summaries before the swap.
    """

    name: str
    consumer: str
    topics: tuple[str, ...]
    tables: tuple[Table, ...]
    apply: Callable[[AsyncSession, Tables, Envelope], Awaitable[object]]
    before_swap: Callable[[AsyncSession, Tables, dt.datetime], Awaitable[None]] | None = None
    after_swap: Callable[[], Awaitable[None]] | None = None
    counts: tuple[ListCounts, ...] = ()

    def __post_init__(self) -> None:
        names = [t.name for t in self.tables]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"read model {self.name!r} needs distinct tables, got {names}")
        for counts in self.counts:
            if not {counts.summaries.name, counts.counts.name} <= set(names):
                raise ValueError(
                    f"read model {self.name!r}: the counters {counts.counts.name} and their "
                    f"summaries {counts.summaries.name} must be among its tables {names}"
                )
        if any(t.schema is not None for t in self.tables):
            raise ValueError("a read model's tables live in the default schema (search_path)")
        for name in (*names, self.name):
            if len(name) + len(REBUILD_SUFFIX) > _MAX_IDENTIFIER:
                raise ValueError(f"{name!r}{REBUILD_SUFFIX} is longer than a PostgreSQL name")

    @property
    def live(self) -> Tables:
        """The live tables, by name."""
        return {t.name: t for t in self.tables}


class RebuildRefused(RuntimeError):
    """The rebuild stopped before the swap (another one runs, or ``before_swap`` refused); the
    live read model is unchanged."""


@dataclass(frozen=True)
class RebuildReport:
    """The outcome of a rebuild: events replayed (applied, or skipped as permanently
    unappliable), rows per live table after the swap, and the end offsets the replay reached
    (``"topic:partition"`` -> the next offset, i.e. one past the last event read)."""

    read_model: str
    events_applied: int
    events_skipped: int
    rows: dict[str, int] = field(default_factory=dict)
    end_offsets: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as printed by ``<service> rebuild-read-model``."""
        return {
            "read_model": self.read_model,
            "events_applied": self.events_applied,
            "events_skipped": self.events_skipped,
            "rows": dict(self.rows),
            "end_offsets": dict(self.end_offsets),
        }


# ------------------------------------------------------------------------------ live projector


def _lock_key(prefix: str, name: str) -> Any:
    return func.hashtextextended(f"{prefix}:{name}", 0)


async def exclude_rebuild(session: AsyncSession, model: ReadModel) -> None:
    """Take the read model's lock *shared* until the transaction ends: a rebuild's swap (which
    takes it exclusively) waits for this transaction, and this one waits for the swap.

    Every live write to the read model's tables calls it, and first, before touching them: the
    projector (:func:`project` does), and any other writer (board's view-count flush). A writer
    that touched a table first would hold a table lock the swap's ``DROP`` waits for while it
    waits for this lock: a deadlock."""
    await _SHARE_READ_MODEL.execute(session, key=f"read-model:{model.name}")


#: compiled once: every projected event takes this lock first
_SHARE_READ_MODEL = CompiledWrite(
    select(
        func.pg_advisory_xact_lock_shared(func.hashtextextended(bindparam("key", type_=Text()), 0))
    )
)


async def project(uow: UnitOfWork, model: ReadModel, env: Envelope) -> object | None:
    """Project one event into the live tables, in the caller's unit of work.

    In order: :func:`exclude_rebuild`; the inbox (``model.consumer``); ``model.apply`` on the
    live tables; the checkpoint (``env.offset + 1``, the next offset, when the envelope came
    from Kafka: ``env.offset >= 0``). Returns ``apply``'s result, or None for a duplicate (its
    effect is already committed; the checkpoint is still advanced). The caller commits, then
    calls :func:`report_checkpoint`. Errors are ``apply``'s and the database's."""
    await exclude_rebuild(uow.session, model)
    result: object | None = None
    if await uow.first_delivery(model.consumer, env.id):
        result = await model.apply(uow.session, model.live, env)
    if env.offset >= 0:
        await save_checkpoint(uow.session, model.name, env.topic, env.partition, env.offset + 1)
    return result


def report_checkpoint(service: str, projection: str, env: Envelope) -> None:
    """After the commit: gauge ``projection_checkpoint_offset`` := ``env.offset``, the last
    offset applied (nothing for an envelope that did not come from Kafka)."""
    if env.offset >= 0:
        PROJECTION_CHECKPOINT.labels(service, projection, env.topic, str(env.partition)).set(
            env.offset
        )


def live_projector(
    uow_factory: Callable[[], UnitOfWork], model: ReadModel, service: str
) -> Callable[[Envelope], Awaitable[None]]:
    """A consumer handler for ``model`` (group ``model.consumer``): one unit of work per event
    (:func:`project`: the shared lock, the inbox, ``apply``, the checkpoint), committed, then
    :func:`report_checkpoint`. A permanent failure of ``apply`` propagates, so the consumer
    dead-letters the event at once. A service whose projector does more in the same
    transaction (board's author copy) writes its own handler around :func:`project`."""

    async def handle(env: Envelope) -> None:
        async with uow_factory() as uow:
            await project(uow, model, env)
            await uow.commit()
        report_checkpoint(service, model.name, env)

    return handle


def checkpoint_report(
    sessions: async_sessionmaker[AsyncSession], service: str
) -> Callable[[], Awaitable[None]]:
    """A ``PeriodicTask`` tick: publish every stored checkpoint row as the gauge, ``next_offset
    - 1`` (the last offset applied), a running rebuild's ``<name>_rebuild`` rows included; the
    series of a row that is gone (a finished rebuild's) are removed."""
    published: set[tuple[str, str, str, str]] = set()

    async def report() -> None:
        t = projection_checkpoint_table
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(t.c.projection, t.c.topic, t.c.partition, t.c.next_offset)
                )
            ).all()
        current: set[tuple[str, str, str, str]] = set()
        for projection, topic, partition, next_offset in rows:
            labels = (service, str(projection), str(topic), str(partition))
            PROJECTION_CHECKPOINT.labels(*labels).set(int(next_offset) - 1)
            current.add(labels)
        for labels in published - current:
            _remove_series(labels)
        published.clear()
        published.update(current)

    return report


def _remove_series(labels: tuple[str, str, str, str]) -> None:
    with contextlib.suppress(KeyError):  # never set in this process
        PROJECTION_CHECKPOINT.remove(*labels)


# ------------------------------------------------------------------------------ rebuild


async def rebuild(
    engine: AsyncEngine,
    kafka: KafkaTarget,
    topics: Sequence[str],
    model: ReadModel,
    *,
    service: str,
) -> RebuildReport:
    """Replay ``topics`` (physical names) from the beginning into fresh tables and swap them in.

    1. One rebuild of ``model`` at a time: a session advisory lock on
       ``hashtextextended('rebuild:<name>', 0)``; held elsewhere -> :class:`RebuildRefused`.
    2. Fresh tables ``<table>_rebuild``, ``CREATE TABLE ... (LIKE <table> INCLUDING ALL)`` (the
       shape the migrations made; leftovers of a crashed rebuild are dropped first), plus the
       live tables' foreign keys under the same names, pointing at the fresh parents. The rows
       of checkpoint ``<name>_rebuild`` are deleted.
    3. Phase 1: ``replay`` to today's end offsets, one transaction per event: ``apply`` to the
       fresh tables and checkpoint ``<name>_rebuild`` (the progress ``checkpoint_report``
       shows). An event whose failure is permanent (``PermanentFailure``,
       ``pydantic.ValidationError``: what the live consumer dead-letters at once, see
       ``chassis.messaging.failures.classify``) is counted as skipped. Then catch-up passes the
       same way, from the offsets reached, until one finds at most ``LOCKED_CATCH_UP_EVENTS``
       new events (at most ``UNLOCKED_CATCH_UP_PASSES``). The live projector keeps running.
    4. Phase 2, one transaction: the read-model lock ``hashtextextended('read-model:<name>',
       0)`` exclusively (live writers wait in :func:`exclude_rebuild`, readers go on); the
       catch-up replay from the offsets phase 1 reached (a savepoint per event);
       ``before_swap``; every counter of ``model.counts`` recomputed from the fresh summaries
       (``ListCounts.recount_sql``; a counter the replay left wrong is logged as
       ``read_model.counters_corrected``); ``DROP`` the live tables, ``RENAME`` the fresh ones, and give every
       index, index-backed constraint (primary key, unique, exclusion), other constraint and
       identity sequence the live name it had, matched through the catalog by definition; the
       live checkpoint := ``greatest(live, reached)``; the ``<name>_rebuild`` rows deleted.
    5. After the commit: ``after_swap()`` and the gauge of the live checkpoint (last offset
       applied).

    On any failure before the commit the fresh tables are dropped and the live ones are kept.
    A transient failure (database, broker) ends the rebuild too: run it again. What ``LIKE``
    does not copy is not kept either: grants, triggers, row-level security, and tables outside
    the model whose foreign keys reference the model's (refused before the replay).

    Raises :class:`RebuildRefused`; ``chassis.messaging.consumer.TopicsNotFound`` when one of
    ``topics`` does not exist (a read model rebuilt from the others would silently lack its
    events); and whatever ``apply``, the database or Kafka raise."""
    sessions = create_session_factory(engine)
    fresh_meta = MetaData()
    # one writer at a time (this process, event by event): child sets need no parent locks
    fresh: dict[str, Table] = {
        t.name: mark_single_writer(t.to_metadata(fresh_meta, name=_fresh_name(t.name)))
        for t in model.tables
    }
    rebuild_checkpoint = model.name + REBUILD_SUFFIX
    counts: Counter[str] = Counter()

    def skip(env: Envelope, exc: Exception) -> None:
        if classify(exc) is not Failure.PERMANENT:
            raise exc
        # the live consumer dead-lettered it at once: skipping keeps the rebuild equal to live
        counts["skipped"] += 1
        log.warning(
            "read_model.rebuild_skipped",
            read_model=model.name,
            event_id=env.id,
            type=env.type,
            error=str(exc)[:500],
        )

    async def replay_one(env: Envelope) -> None:
        try:
            async with sessions() as session, session.begin():
                await model.apply(session, fresh, env)
                await _save_position(session, rebuild_checkpoint, env)
        except Exception as exc:
            skip(env, exc)  # rolled back, so nothing of the event stays; re-raised unless permanent
            async with sessions() as session, session.begin():
                await _save_position(session, rebuild_checkpoint, env)
        else:
            counts["applied"] += 1

    rebuild_lock = _lock_key("rebuild", model.name)
    async with engine.connect() as guard:
        locked = await guard.scalar(select(func.pg_try_advisory_lock(rebuild_lock)))
        await guard.commit()
        if not locked:
            raise RebuildRefused(f"another rebuild of {model.name} is running")
        try:
            started = utcnow()
            async with engine.begin() as conn:
                await _create_fresh(conn, model, rebuild_checkpoint)
            log.info("read_model.replay_started", read_model=model.name, topics=list(topics))
            reached = await replay(kafka, list(topics), replay_one)
            log.info(
                "read_model.replayed",
                read_model=model.name,
                applied=counts["applied"],
                skipped=counts["skipped"],
            )
            # Catch up without the lock while the backlog is large: what arrived during a long
            # replay would otherwise be replayed with the live projector held, as long again.
            for _ in range(UNLOCKED_CATCH_UP_PASSES):
                before = counts.total()
                reached = await replay(kafka, list(topics), replay_one, start_offsets=reached)
                if counts.total() - before <= LOCKED_CATCH_UP_EVENTS:
                    break
            async with sessions() as session, session.begin():
                await session.execute(
                    select(func.pg_advisory_xact_lock(_lock_key("read-model", model.name)))
                )

                async def catch_up(env: Envelope) -> None:
                    try:
                        async with session.begin_nested():
                            await model.apply(session, fresh, env)
                    except Exception as exc:
                        skip(env, exc)
                    else:
                        counts["applied"] += 1

                before = counts.total()
                reached = await replay(kafka, list(topics), catch_up, start_offsets=reached)
                log.info(
                    "read_model.caught_up",
                    read_model=model.name,
                    events_under_lock=counts.total() - before,
                )
                if model.before_swap is not None:
                    await model.before_swap(session, fresh, started)
                await _recount(session, model)
                await _swap(session, model)
                live_offsets = await _advance_live_checkpoints(
                    session, model.name, rebuild_checkpoint, reached
                )
                rows = {
                    t.name: int(await session.scalar(select(func.count()).select_from(t)) or 0)
                    for t in model.tables
                }
        except BaseException:
            await _drop_fresh(engine, model, rebuild_checkpoint)
            raise
        finally:
            await _unlock(guard, rebuild_lock)
    log.info("read_model.swapped", read_model=model.name, rows=rows)
    for (topic, partition), next_offset in live_offsets.items():
        PROJECTION_CHECKPOINT.labels(service, model.name, topic, str(partition)).set(
            next_offset - 1
        )
        _remove_series((service, rebuild_checkpoint, topic, str(partition)))
    if model.after_swap is not None:
        await model.after_swap()
    return RebuildReport(
        read_model=model.name,
        events_applied=counts["applied"],
        events_skipped=counts["skipped"],
        rows=rows,
        end_offsets={f"{tp.topic}:{tp.partition}": n for tp, n in sorted(reached.items())},
    )


async def rebuild_from_settings(settings: BaseServiceSettings, model: ReadModel) -> RebuildReport:
    """The admin process ``<service> rebuild-read-model``: :func:`rebuild` of ``model`` on the
    service's database (a pool of 2: the rebuild lock and one session) and its topics under
    ``KAFKA_TOPIC_PREFIX``. Raises what :func:`rebuild` raises."""
    engine = create_engine(settings.DATABASE_URL, pool_size=2)
    try:
        return await rebuild(
            engine,
            settings.kafka_connection(),
            [settings.topic(name) for name in model.topics],
            model,
            service=settings.SERVICE_NAME,
        )
    finally:
        await engine.dispose()


async def _recount(session: AsyncSession, model: ReadModel) -> None:
    """Set the fresh counters from the fresh summaries, so they swap together and exact."""
    for counts in model.counts:
        corrected = await session.scalar(
            text(
                counts.recount_sql(
                    _fresh_name(counts.summaries.name), _fresh_name(counts.counts.name)
                )
            )
        )
        if corrected:
            # the replay's own counting went wrong somewhere: the recount repaired it
            log.warning(
                "read_model.counters_corrected",
                read_model=model.name,
                counters=counts.counts.name,
                corrected=int(corrected),
            )


def _fresh_name(live: str) -> str:
    return live + REBUILD_SUFFIX


def _quote(session: AsyncSession, name: str) -> str:
    return session.bind.dialect.identifier_preparer.quote(name)


async def _save_position(session: AsyncSession, projection: str, env: Envelope) -> None:
    if env.offset >= 0:
        await save_checkpoint(session, projection, env.topic, env.partition, env.offset + 1)


async def _create_fresh(conn: AsyncConnection, model: ReadModel, rebuild_checkpoint: str) -> None:
    """The fresh tables, shaped like the live ones, and the rebuild's checkpoint emptied."""
    q = conn.dialect.identifier_preparer.quote
    oids: dict[int, str] = {}
    for table in model.tables:
        oid = await conn.scalar(text("SELECT to_regclass(:t)::oid"), {"t": q(table.name)})
        if oid is None:
            raise RuntimeError(f"table {table.name} does not exist: run `migrate` first")
        oids[int(oid)] = table.name
    foreign = (
        await conn.execute(
            text(
                "SELECT conname, conrelid::regclass::text, confrelid::regclass::text"
                " FROM pg_constraint WHERE contype = 'f'"
                " AND confrelid = ANY(:oids) AND NOT conrelid = ANY(:oids)"
            ),
            {"oids": list(oids)},
        )
    ).all()
    if foreign:
        raise RebuildRefused(
            "tables outside the read model reference it, and a swap would drop their foreign "
            f"keys: {[tuple(r) for r in foreign]}"
        )
    await conn.execute(
        text(f"DROP TABLE IF EXISTS {', '.join(q(_fresh_name(n)) for n in oids.values())}")
    )
    for table in model.tables:
        await conn.execute(
            text(f"CREATE TABLE {q(_fresh_name(table.name))} (LIKE {q(table.name)} INCLUDING ALL)")
        )
    # LIKE copies no foreign key: add the live ones, under their names (unique per table, so
    # no rename later), pointing at the fresh copy when the parent is one of the model's tables
    for oid, name in oids.items():
        keys = await conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid), confrelid, confrelid::regclass::text"
                " FROM pg_constraint WHERE contype = 'f' AND conrelid = :oid ORDER BY conname"
            ),
            {"oid": oid},
        )
        for conname, definition, parent_oid, parent_text in keys.all():
            parent = oids.get(int(parent_oid))
            if parent is not None:
                definition = definition.replace(
                    f"REFERENCES {parent_text}(", f"REFERENCES {q(_fresh_name(parent))}(", 1
                )
            await conn.execute(
                text(f"ALTER TABLE {q(_fresh_name(name))} ADD CONSTRAINT {q(conname)} {definition}")
            )
    await conn.execute(
        delete(projection_checkpoint_table).where(
            projection_checkpoint_table.c.projection == rebuild_checkpoint
        )
    )


@dataclass(frozen=True)
class _Names:
    """The names of a table's indexes, constraints and identity sequences, by what they are."""

    indexes: dict[tuple[str, ...], list[str]]
    constraints: dict[tuple[str, ...], list[str]]
    sequences: dict[tuple[str, ...], list[str]]


async def _names(session: AsyncSession, table: str) -> _Names:
    """Read from the catalog. An index is known by its definition after ``USING`` (the part
    that names neither the index nor the table) and the constraint it backs; a constraint
    without an index by its type and definition; an identity sequence by its column."""
    oid = {"t": _quote(session, table)}
    indexes: dict[tuple[str, ...], list[str]] = {}
    for name, definition, contype in await session.execute(
        text(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid), coalesce(c.contype::text, '')"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid"
            "  AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')"
            " WHERE x.indrelid = to_regclass(:t) ORDER BY i.relname"
        ),
        oid,
    ):
        head, _, tail = str(definition).partition(" USING ")
        key = (str(contype), str(head.startswith("CREATE UNIQUE")), tail)
        indexes.setdefault(key, []).append(str(name))
    constraints: dict[tuple[str, ...], list[str]] = {}
    for name, contype, definition in await session.execute(
        text(
            "SELECT conname, contype::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = to_regclass(:t) AND contype NOT IN ('p', 'u', 'x')"
            " ORDER BY conname"
        ),
        oid,
    ):
        constraints.setdefault((str(contype), str(definition)), []).append(str(name))
    sequences: dict[tuple[str, ...], list[str]] = {}
    for name, column in await session.execute(
        text(
            "SELECT s.relname, a.attname FROM pg_depend d"
            " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
            " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
            " WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
            "  AND d.refobjid = to_regclass(:t) AND d.deptype = 'i'"
        ),
        oid,
    ):
        sequences.setdefault((str(column),), []).append(str(name))
    return _Names(indexes, constraints, sequences)


def _renames(
    table: str,
    what: str,
    live: dict[tuple[str, ...], list[str]],
    fresh: dict[tuple[str, ...], list[str]],
) -> list[tuple[str, str]]:
    """(fresh name, live name) pairs; raises if the two tables' objects differ."""
    if {k: len(v) for k, v in live.items()} != {k: len(v) for k, v in fresh.items()}:
        raise RuntimeError(
            f"the {what} of {table}'s fresh copy differ from the live table's: "
            f"live {sorted(live.items())}, fresh {sorted(fresh.items())}"
        )
    return [
        (new, old)
        for key, olds in live.items()
        for new, old in zip(fresh[key], olds, strict=True)
        if new != old
    ]


async def _swap(session: AsyncSession, model: ReadModel) -> None:
    """Replace every live table by its fresh copy, under the live names, in the caller's
    transaction. The live tables go in one ``DROP`` (any foreign keys among them are dropped
    with them, in whatever order), then each fresh table takes its live name, then its
    indexes, constraints and identity sequences take the live table's names: ``LIKE`` named
    them after the fresh table (``post_summaries_rebuild_pkey``), and the next rebuild, the
    migrations and the queries' plans expect the migrated names."""
    q = session.bind.dialect.identifier_preparer.quote
    before = {t.name: await _names(session, t.name) for t in model.tables}
    await session.execute(text(f"DROP TABLE {', '.join(q(t.name) for t in model.tables)}"))
    for table in model.tables:
        await session.execute(
            text(f"ALTER TABLE {q(_fresh_name(table.name))} RENAME TO {q(table.name)}")
        )
    for table in model.tables:
        live, after = before[table.name], await _names(session, table.name)
        # renaming an index renames the constraint it backs too (PostgreSQL keeps them equal)
        for new, old in _renames(table.name, "indexes", live.indexes, after.indexes):
            await session.execute(text(f"ALTER INDEX {q(new)} RENAME TO {q(old)}"))
        for new, old in _renames(table.name, "constraints", live.constraints, after.constraints):
            await session.execute(
                text(f"ALTER TABLE {q(table.name)} RENAME CONSTRAINT {q(new)} TO {q(old)}")
            )
        for new, old in _renames(table.name, "sequences", live.sequences, after.sequences):
            await session.execute(text(f"ALTER SEQUENCE {q(new)} RENAME TO {q(old)}"))


async def _advance_live_checkpoints(
    session: AsyncSession,
    projection: str,
    rebuild_checkpoint: str,
    reached: Mapping[TopicPartition, int],
) -> dict[tuple[str, int], int]:
    """Live checkpoint := greatest(live, reached) per partition; the rebuild's rows deleted.
    Returns the live next offsets of the replayed partitions."""
    for tp, next_offset in reached.items():
        if next_offset > 0:  # an empty partition: nothing was applied, nothing to record
            await save_checkpoint(session, projection, tp.topic, tp.partition, next_offset)
    t = projection_checkpoint_table
    await session.execute(delete(t).where(t.c.projection == rebuild_checkpoint))
    replayed = {(tp.topic, tp.partition) for tp in reached}
    rows = await session.execute(
        select(t.c.topic, t.c.partition, t.c.next_offset).where(t.c.projection == projection)
    )
    return {
        (str(topic), int(partition)): int(offset)
        for topic, partition, offset in rows
        if (topic, partition) in replayed
    }


async def _drop_fresh(engine: AsyncEngine, model: ReadModel, rebuild_checkpoint: str) -> None:
    """Leave no half-built table behind. Best effort: if the database is gone, the next rebuild
    drops the leftovers before it starts."""
    try:
        async with engine.begin() as conn:
            q = conn.dialect.identifier_preparer.quote
            names = ", ".join(q(_fresh_name(t.name)) for t in model.tables)
            await conn.execute(text(f"DROP TABLE IF EXISTS {names}"))
            await conn.execute(
                delete(projection_checkpoint_table).where(
                    projection_checkpoint_table.c.projection == rebuild_checkpoint
                )
            )
    except Exception as exc:
        log.warning("read_model.cleanup_failed", read_model=model.name, error=str(exc)[:500])


async def _unlock(guard: AsyncConnection, key: Any) -> None:
    try:
        await guard.scalar(select(func.pg_advisory_unlock(key)))
        await guard.commit()
    except Exception:
        # a session lock ends with its session: discard the connection rather than pool it
        await guard.invalidate()
