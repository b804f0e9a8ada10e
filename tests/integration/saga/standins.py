"""Stand-in saga participants: chassis.saga.SagaParticipant over a scratch database per service.

They apply every command the two sagas send by recording it in an ``applied`` table, and can be
told to refuse a command or to be slow, so orchestrator tests need no real service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import JSON, Column, Identity, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.db import UnitOfWork, chassis_metadata, create_engine, create_session_factory
from chassis.messaging.consumer import ConsumerRunner
from chassis.messaging.outbox import OutboxRelay
from chassis.saga import CommandHandler, CommandRejected, SagaCommand, SagaParticipant
from saga.definitions import DEFINITIONS
from tests.support.infra import Infra

standin_metadata = MetaData()
applied = Table(
    "applied",
    standin_metadata,
    Column("seq", Integer, Identity(), primary_key=True),
    Column("saga_id", String(64), nullable=False),
    Column("command", String(100), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
)


@dataclass
class StandIn:
    """One participant service: what it refuses, how slow it is, what it answers."""

    service: str
    engine: AsyncEngine
    refuse: set[str] = field(default_factory=set)
    delay: dict[str, float] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(create_session_factory(self.engine), f"standin-{self.service}")

    def handlers(self) -> Mapping[str, CommandHandler[UnitOfWork]]:
        commands = {c for d in DEFINITIONS.values() for c in d.commands_of(self.service)}
        return dict.fromkeys(commands, self._handle)

    async def _handle(self, uow: UnitOfWork, command: SagaCommand) -> Mapping[str, Any] | None:
        await asyncio.sleep(self.delay.get(command.command, 0))
        if command.command in self.refuse:
            raise CommandRejected(f"{self.service} refuses {command.command}")
        await uow.session.execute(
            applied.insert().values(
                saga_id=command.saga_id,
                command=command.command,
                attempt=command.attempt,
                payload=command.payload,
            )
        )
        return self.results.get(command.command)

    async def applied(self, saga_id: str) -> list[str]:
        """The commands applied for ``saga_id``, in order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(applied.c.command)
                .where(applied.c.saga_id == saga_id)
                .order_by(applied.c.seq)
            )
            return [r.command for r in rows]

    async def payload(self, saga_id: str, command: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(applied.c.payload).where(
                    applied.c.saga_id == saga_id, applied.c.command == command
                )
            )
            assert value is not None, f"{self.service} never applied {command}"
            return dict(value)


@dataclass
class StandIns:
    member: StandIn
    board: StandIn
    qna: StandIn

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.member, self.board, self.qna))


@contextlib.asynccontextmanager
async def running_standins(
    infra: Infra, prefix: str, producer: AIOKafkaProducer
) -> AsyncIterator[StandIns]:
    """Three participants, each with its own database, command consumer and outbox relay."""
    urls = [await infra.create_database("standin") for _ in range(3)]
    parts = []
    tasks: list[asyncio.Task[None]] = []
    loops: list[ConsumerRunner | OutboxRelay] = []
    try:
        for service, url in zip(("member", "board", "qna"), urls, strict=True):
            engine = create_engine(url, pool_size=3)
            async with engine.begin() as conn:
                await conn.run_sync(chassis_metadata.create_all)
                await conn.run_sync(standin_metadata.create_all)
            standin = StandIn(service, engine)
            participant = SagaParticipant(service, standin.uow, standin.handlers())
            consumer = ConsumerRunner(
                kafka=infra.kafka_bootstrap,
                topics=[f"{prefix}saga.{service}.commands"],
                group_id=f"{prefix}standin-{service}",
                handler=participant.handle,
                on_dead_letter=participant.on_dead_letter,
                producer=producer,
                service=f"standin-{service}",
            )
            relay = OutboxRelay(
                create_session_factory(engine),
                producer,
                service=f"standin-{service}",
                topic_prefix=prefix,
            )
            loops += [consumer, relay]
            tasks += [asyncio.create_task(consumer.run()), asyncio.create_task(relay.run())]
            parts.append(standin)
        consumers = [loop for loop in loops if isinstance(loop, ConsumerRunner)]
        await asyncio.wait_for(asyncio.gather(*(c.assigned.wait() for c in consumers)), 60)
        yield StandIns(*parts)
    finally:
        for loop in loops:
            await loop.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        for part in parts:
            await part.engine.dispose()
        for url in urls:
            await infra.drop_database(url)
