"""CQRS read-model rebuild (chassis): two phases beside the live projector, then a swap that keeps the migrated names.

A toy read model, made the way the services make theirs: a parent table (``toy_totals``: one row
per owner, with a primary key, a unique and a check constraint, a partial index) and a child set
(``chassis.child_sets.child_table``, with a foreign key to the parent), created by migration-like
DDL in the test's own database, fed from two topics (one with two partitions) by a live
``ConsumerRunner`` calling ``chassis.read_model.project``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text, update
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from chassis import child_sets
from chassis.db import UnitOfWork, projection_checkpoint_table
from chassis.messaging.consumer import ConsumerRunner, TopicsNotFound
from chassis.messaging.envelope import Envelope, to_kafka
from chassis.messaging.topics import ensure_topics
from chassis.read_model import (
    ReadModel,
    RebuildRefused,
    RebuildReport,
    Tables,
    project,
    rebuild,
    report_checkpoint,
)
from tests.support.infra import Infra, wait_for
from tests.support.kafka import delete_topics_with_prefix

pytestmark = pytest.mark.integration

SERVICE = "toy-tests"

# ------------------------------------------------------------------------------ the toy read model

MIGRATION = """
CREATE TABLE toy_totals (
    owner_id uuid NOT NULL,
    slug varchar(60) NOT NULL,
    label varchar(100) NOT NULL,
    item_count integer NOT NULL DEFAULT 0,
    version integer NOT NULL,
    CONSTRAINT pk_toy_totals PRIMARY KEY (owner_id),
    CONSTRAINT uq_toy_totals_slug UNIQUE (slug),
    CONSTRAINT ck_toy_totals_count CHECK (item_count >= 0)
);
CREATE INDEX ix_toy_totals_label ON toy_totals (label) WHERE item_count > 0;
ALTER TABLE toy_items ADD CONSTRAINT fk_toy_items_owner
    FOREIGN KEY (parent_id) REFERENCES toy_totals (owner_id) ON DELETE CASCADE;
"""

meta = MetaData()
toy_items = child_sets.child_table("toy_items", meta)  # pk_toy_items, ix_toy_items_parent
toy_totals = Table(
    "toy_totals",
    meta,
    Column("owner_id", UUID(as_uuid=True), primary_key=True),
    Column("slug", String(60), nullable=False),
    Column("label", String(100), nullable=False),
    Column("item_count", Integer, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False),
)


class OwnerNamed(BaseModel):
    owner_id: uuid.UUID
    slug: str
    label: str
    version: int


class ItemChanged(BaseModel):
    item_id: uuid.UUID
    owner_id: uuid.UUID


async def apply(session: AsyncSession, tables: Tables, env: Envelope) -> object:
    """Owner fields: newest version wins; item count: the alive items of the owner's set. An
    item may come before its owner: a placeholder row holds its place (the foreign key)."""
    totals, items = tables["toy_totals"], tables["toy_items"]
    if env.type == "OwnerNamed":
        owner = OwnerNamed.model_validate(env.data)
        stmt = insert(totals).values(
            owner_id=owner.owner_id, slug=owner.slug, label=owner.label, version=owner.version
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[totals.c.owner_id],
                set_={"slug": owner.slug, "label": owner.label, "version": owner.version},
                where=totals.c.version < stmt.excluded.version,
            )
        )
        return True
    if env.type in ("ItemAdded", "ItemRemoved"):
        item = ItemChanged.model_validate(env.data)
        await session.execute(
            insert(totals)
            .values(owner_id=item.owner_id, slug=str(item.owner_id), label="", version=0)
            .on_conflict_do_nothing(index_elements=[totals.c.owner_id])
        )
        child = child_sets.Child("items", str(item.item_id), item.owner_id, env.type == "ItemAdded")
        for parent in await child_sets.record(session, items, [child]):
            await session.execute(
                update(totals)
                .where(totals.c.owner_id == parent)
                .values(item_count=child_sets.tally(items, "items", parent))
            )
        return True
    return False


async def migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all, tables=[toy_items])
        for statement in MIGRATION.split(";"):
            if statement.strip():
                await conn.execute(text(statement))


def toy_model(**hooks: Any) -> ReadModel:
    return ReadModel(
        name="toy_totals",
        consumer="toy-projector",
        topics=("toy.owners", "toy.items"),
        tables=(toy_totals, toy_items),
        apply=apply,
        **hooks,
    )


def held_at_the_first_event() -> tuple[
    asyncio.Event, asyncio.Event, Callable[[AsyncSession, Tables, Envelope], Awaitable[object]]
]:
    """An ``apply`` that stops at the rebuild's first event until ``go_on`` is set, so a test can
    act while phase 1 is under way; ``started`` is set when it stops."""
    started, go_on = asyncio.Event(), asyncio.Event()

    async def held_apply(session: AsyncSession, tables: Tables, env: Envelope) -> object:
        if not started.is_set():
            started.set()
            await go_on.wait()
        return await apply(session, tables, env)

    return started, go_on, held_apply


# ------------------------------------------------------------------------------ the harness


class Toy:
    """The toy service: its database, its topics, a producer and the live projector."""

    def __init__(
        self, infra: Infra, engine: AsyncEngine, prefix: str, producer: AIOKafkaProducer
    ) -> None:
        self.infra = infra
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.prefix = prefix
        self.producer = producer
        self.model = toy_model()
        self.topics = [f"{prefix}{t}" for t in self.model.topics]
        self.sent: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset
        self.owners = [uuid.uuid4() for _ in range(4)]
        self.items: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def send(
        self,
        logical: str,
        event_type: str,
        data: dict[str, Any],
        key: str,
        partition: int | None = None,
    ) -> None:
        key_, value, headers = to_kafka(Envelope.new(event_type, "toy", data, key=key))
        meta_ = await self.producer.send_and_wait(
            f"{self.prefix}{logical}", value=value, key=key_, headers=headers, partition=partition
        )
        self.sent[(meta_.topic, meta_.partition)] = meta_.offset + 1

    async def name_owners(self, version: int) -> None:
        for n, owner in enumerate(self.owners):
            data = {
                "owner_id": str(owner),
                "slug": f"o{n}",
                "label": f"owner {n} v{version}",
                "version": version,
            }
            await self.send("toy.owners", "OwnerNamed", data, str(owner))

    async def add_items(self, count: int) -> None:
        for n in range(count):
            owner, item = self.owners[n % len(self.owners)], uuid.uuid4()
            self.items.append((owner, item))
            data = {"item_id": str(item), "owner_id": str(owner)}
            await self.send("toy.items", "ItemAdded", data, str(item))

    async def remove_items(self, count: int) -> None:
        for owner, item in self.items[:count]:
            data = {"item_id": str(item), "owner_id": str(owner)}
            await self.send("toy.items", "ItemRemoved", data, str(item))

    async def handle(self, env: Envelope) -> None:
        async with UnitOfWork(self.sessions, source=SERVICE) as uow:
            await project(uow, self.model, env)
            await uow.commit()
        report_checkpoint(SERVICE, self.model.name, env)

    @asynccontextmanager
    async def live_projector(self) -> AsyncIterator[ConsumerRunner]:
        runner = ConsumerRunner(
            kafka=self.infra.kafka_bootstrap,
            topics=self.topics,
            group_id=f"{self.prefix}toy-projector",
            handler=self.handle,
            producer=self.producer,
            service=SERVICE,
        )
        task = asyncio.create_task(runner.run())
        try:
            yield runner
        finally:
            await runner.stop()
            await asyncio.wait_for(task, 30)

    async def checkpoints(self, projection: str) -> dict[tuple[str, int], int]:
        t = projection_checkpoint_table
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.c.topic, t.c.partition, t.c.next_offset).where(
                    t.c.projection == projection
                )
            )
            return {(r.topic, r.partition): r.next_offset for r in rows}

    async def caught_up(self) -> bool:
        stored = await self.checkpoints(self.model.name)
        return all(stored.get(tp, 0) >= end for tp, end in self.sent.items())

    async def wait_caught_up(self) -> None:
        await wait_for(self.caught_up, timeout=60, message="the live projector to catch up")

    async def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        async with self.engine.connect() as conn:
            totals = await conn.execute(text("SELECT * FROM toy_totals ORDER BY owner_id"))
            items = await conn.execute(text("SELECT * FROM toy_items ORDER BY kind, child_id"))
            return {
                "toy_totals": [tuple(r) for r in totals],
                "toy_items": [tuple(r) for r in items],
            }

    def expected_counts(self, removed: int) -> dict[uuid.UUID, int]:
        gone = {item for _, item in self.items[:removed]}
        counts = dict.fromkeys(self.owners, 0)
        for owner, item in self.items:
            counts[owner] += item not in gone
        return counts

    async def counts(self) -> dict[uuid.UUID, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(toy_totals.c.owner_id, toy_totals.c.item_count))
            return {r.owner_id: r.item_count for r in rows}

    async def catalog(self) -> set[tuple[str, ...]]:
        """Every index and constraint of the toy tables, by table, name and definition."""
        async with self.engine.connect() as conn:
            indexes = await conn.execute(
                text(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes"
                    " WHERE tablename LIKE 'toy%'"
                )
            )
            constraints = await conn.execute(
                text(
                    "SELECT conrelid::regclass::text, conname, contype::text,"
                    " pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE conrelid::regclass::text LIKE 'toy%'"
                )
            )
            return {tuple(r) for r in indexes} | {tuple(r) for r in constraints}

    async def exists(self, table: str) -> bool:
        async with self.engine.connect() as conn:
            return bool(await conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}))

    async def rebuild(self, model: ReadModel | None = None) -> RebuildReport:
        return await rebuild(
            self.engine,
            self.infra.kafka_bootstrap,
            self.topics,
            model or self.model,
            service=SERVICE,
        )


@pytest.fixture
async def toy(infra: Infra, engine: AsyncEngine, topic_prefix: str) -> AsyncIterator[Toy]:
    bootstrap = infra.kafka_bootstrap
    await ensure_topics(
        bootstrap, [f"{topic_prefix}toy.owners", f"{topic_prefix}toy.owners.dlq"], partitions=1
    )
    await ensure_topics(
        bootstrap, [f"{topic_prefix}toy.items", f"{topic_prefix}toy.items.dlq"], partitions=2
    )
    await migrate(engine)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        yield Toy(infra, engine, topic_prefix, producer)
    finally:
        await producer.stop()
        await delete_topics_with_prefix(bootstrap, topic_prefix)


def gauge(projection: str, topic: str, partition: int) -> float | None:
    labels = {
        "service": SERVICE,
        "projection": projection,
        "topic": topic,
        "partition": str(partition),
    }
    return REGISTRY.get_sample_value("projection_checkpoint_offset", labels)


# ------------------------------------------------------------------------------ tests


async def test_a_rebuild_equals_the_live_read_model_and_keeps_the_migrated_names(toy: Toy) -> None:
    migrated = await toy.catalog()
    await toy.add_items(10)  # items before their owners: placeholders
    await toy.name_owners(version=1)
    # a malformed event (dead-lettered live, skipped by the rebuild), then one the read model
    # ignores on the same partition, which moves the checkpoint past it
    await toy.send("toy.items", "ItemAdded", {"item_id": "not-a-uuid"}, "bad", partition=0)
    await toy.send("toy.items", "ItemNoted", {}, "noted", partition=0)
    await toy.remove_items(3)
    await toy.name_owners(version=2)
    await toy.remove_items(1)  # a repeated removal: nothing changes
    events = 10 + 4 + 2 + 3 + 4 + 1
    async with toy.live_projector():
        await toy.wait_caught_up()
        live = await toy.rows()
        assert await toy.counts() == toy.expected_counts(removed=3)

        # damage the live read model; the rebuild repairs it, with the live projector running
        async with toy.engine.begin() as conn:
            await conn.execute(text("UPDATE toy_totals SET item_count = 99, label = 'wrong'"))
            await conn.execute(text("DELETE FROM toy_items WHERE NOT alive"))
        report = await toy.rebuild()

        assert await toy.rows() == live
        assert await toy.catalog() == migrated  # PK, unique, check, FK and index names
        assert (report.events_applied, report.events_skipped) == (events - 1, 1)
        assert report.rows == {"toy_totals": 4, "toy_items": 10}
        reached = {k: n for k, n in report.end_offsets.items() if n}  # an empty partition: 0
        assert reached == {f"{t}:{p}": n for (t, p), n in sorted(toy.sent.items())}
        for name in ("toy_totals_rebuild", "toy_items_rebuild"):
            assert not await toy.exists(name)
        stored = await toy.checkpoints("toy_totals")
        for (topic, partition), end in toy.sent.items():
            assert stored[(topic, partition)] >= end
            assert gauge("toy_totals", topic, partition) == stored[(topic, partition)] - 1
        assert await toy.checkpoints("toy_totals_rebuild") == {}

        # the live projector goes on, on the swapped-in tables
        await toy.add_items(2)
        await toy.wait_caught_up()
        counts = toy.expected_counts(removed=3)
        assert await toy.counts() == counts
        assert (await toy.rebuild()).rows["toy_items"] == 12  # and a second rebuild works
        assert await toy.catalog() == migrated


async def test_events_produced_during_a_rebuild_are_lost_nowhere(toy: Toy) -> None:
    await toy.name_owners(version=1)
    await toy.add_items(40)
    phase_one_started, go_on, held_apply = held_at_the_first_event()

    async def during_phase_two(session: AsyncSession, tables: Tables, started: Any) -> None:
        # the catch-up is done and the lock held: the live projector waits for the swap
        await toy.add_items(5)
        await asyncio.sleep(1.0)

    async with toy.live_projector():
        await toy.wait_caught_up()
        task = asyncio.create_task(
            toy.rebuild(
                dataclasses.replace(toy.model, apply=held_apply, before_swap=during_phase_two)
            )
        )
        await asyncio.wait_for(phase_one_started.wait(), 30)
        # phase 1 is under way: the live projector applies these to the live tables alone,
        # the rebuild's catch-up applies them to the fresh ones
        await toy.add_items(10)
        await toy.remove_items(8)
        # a malformed event for the catch-up to skip (and one that moves the checkpoint past it)
        await toy.send("toy.items", "ItemRemoved", {"owner_id": "x"}, "bad", partition=1)
        await toy.send("toy.items", "ItemNoted", {}, "noted", partition=1)
        await toy.wait_caught_up()
        go_on.set()
        report = await asyncio.wait_for(task, 60)
        await toy.wait_caught_up()
        assert await toy.counts() == toy.expected_counts(removed=8)
        # the 5 items sent during phase 2 were not in the catch-up: the live projector, which
        # waited for the swap, applied them to the swapped-in tables
        assert report.rows["toy_items"] == 50
        assert report.events_skipped == 1
        live = await toy.rows()
    assert len(live["toy_items"]) == 55
    assert (await toy.rebuild()).rows == {"toy_totals": 4, "toy_items": 55}
    assert await toy.rows() == live


async def test_a_refused_swap_keeps_the_live_tables_and_drops_the_fresh_ones(toy: Toy) -> None:
    migrated = await toy.catalog()
    await toy.name_owners(version=1)
    await toy.add_items(6)
    async with toy.live_projector():
        await toy.wait_caught_up()
    async with toy.engine.begin() as conn:
        await conn.execute(text("UPDATE toy_totals SET label = 'kept'"))
    before = await toy.rows()

    async def refuse(session: AsyncSession, tables: Tables, started: Any) -> None:
        assert set(tables) == {"toy_totals", "toy_items"}
        assert tables["toy_totals"].name == "toy_totals_rebuild"
        raise RebuildRefused("the write side has rows the topics lack")

    with pytest.raises(RebuildRefused, match="the write side"):
        await toy.rebuild(dataclasses.replace(toy.model, before_swap=refuse))
    assert await toy.rows() == before
    assert await toy.catalog() == migrated
    for name in ("toy_totals_rebuild", "toy_items_rebuild"):
        assert not await toy.exists(name)
    assert await toy.checkpoints("toy_totals_rebuild") == {}
    await toy.rebuild()  # the lock was released
    assert {r[2] for r in (await toy.rows())["toy_totals"]} == {f"owner {n} v1" for n in range(4)}


async def test_a_topic_that_does_not_exist_fails_the_rebuild_before_the_swap(toy: Toy) -> None:
    """One missing topic (not created, another prefix) must not give a read model rebuilt from
    the other topics alone: the rebuild names it and the live tables stay as they were."""
    await toy.name_owners(version=1)
    await toy.add_items(6)
    await toy.rebuild()
    live = await toy.rows()
    missing = f"{toy.prefix}toy.missing"
    with pytest.raises(TopicsNotFound, match=missing):
        await rebuild(
            toy.engine,
            toy.infra.kafka_bootstrap,
            [missing, *toy.topics],
            toy.model,
            service=SERVICE,
        )
    assert await toy.rows() == live
    assert not await toy.exists("toy_totals_rebuild")


async def test_a_second_rebuild_at_the_same_time_is_refused(toy: Toy) -> None:
    await toy.name_owners(version=1)
    await toy.add_items(4)
    started, go_on = asyncio.Event(), asyncio.Event()

    async def held_apply(session: AsyncSession, tables: Tables, env: Envelope) -> object:
        started.set()
        await go_on.wait()
        return await apply(session, tables, env)

    first = asyncio.create_task(toy.rebuild(dataclasses.replace(toy.model, apply=held_apply)))
    await asyncio.wait_for(started.wait(), 30)
    with pytest.raises(RebuildRefused, match="another rebuild"):
        await toy.rebuild()
    assert await toy.exists("toy_totals_rebuild")  # the first one's tables were left alone
    go_on.set()
    assert (await asyncio.wait_for(first, 60)).rows == {"toy_totals": 4, "toy_items": 4}
    assert (await toy.rebuild()).rows == {"toy_totals": 4, "toy_items": 4}


async def test_after_the_swap_the_live_checkpoint_covers_what_was_replayed(toy: Toy) -> None:
    await toy.name_owners(version=1)
    await toy.add_items(6)
    assert await toy.checkpoints("toy_totals") == {}  # no live projector has run
    report = await toy.rebuild()
    stored = await toy.checkpoints("toy_totals")
    assert stored == toy.sent  # greatest(live, reached); empty partitions are not recorded
    for (topic, partition), end in toy.sent.items():
        assert gauge("toy_totals", topic, partition) == end - 1  # the last offset applied
    rebuilt = await toy.rows()
    assert report.rows == {"toy_totals": 4, "toy_items": 6}
    async with toy.live_projector():  # its group starts from the beginning: no-ops
        await toy.add_items(1)
        await toy.wait_caught_up()
        assert len((await toy.rows())["toy_items"]) == 7
    assert (await toy.rows())["toy_totals"] != rebuilt["toy_totals"]  # one count moved


async def test_what_arrives_during_a_long_replay_is_caught_up_before_the_lock(toy: Toy) -> None:
    # 150 events arrive while phase 1 is held: more than the locked catch-up should take on,
    # so an unlocked pass catches them up and the live projector is held for none of them.
    await toy.name_owners(version=1)
    await toy.add_items(10)
    phase_one_started, go_on, held_apply = held_at_the_first_event()

    async with toy.live_projector():
        await toy.wait_caught_up()
        with capture_logs() as logs:
            task = asyncio.create_task(
                toy.rebuild(dataclasses.replace(toy.model, apply=held_apply))
            )
            await asyncio.wait_for(phase_one_started.wait(), 30)
            await toy.add_items(150)
            await toy.wait_caught_up()
            go_on.set()
            report = await asyncio.wait_for(task, 60)
    assert report.rows["toy_items"] == 160
    (caught_up,) = [e for e in logs if e["event"] == "read_model.caught_up"]
    assert caught_up["events_under_lock"] == 0
    assert await toy.counts() == toy.expected_counts(removed=0)
