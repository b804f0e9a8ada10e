"""Composition-root helpers: the backing services a process attaches to, created in the lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.auth import JwksVerifier
from chassis.db import create_engine, create_session_factory
from chassis.faults import FaultFlags
from chassis.lifecycle import Phase, Runtime
from chassis.messaging.consumer import ConsumerRunner, DeadLetterHook, Handler
from chassis.messaging.failures import Backoff
from chassis.messaging.outbox import OutboxRelay
from chassis.messaging.producer import create_producer
from chassis.periodic import PeriodicTask
from chassis.read_model import checkpoint_report
from chassis.redis import create_redis
from chassis.saga import SagaParticipant, command_topic
from chassis.settings import BaseServiceSettings


@dataclass
class Resources:
    """Handles to the backing services; each is registered with the runtime for start, readiness
    and an ordered close."""

    settings: BaseServiceSettings
    runtime: Runtime
    engine: AsyncEngine | None = None
    session_factory: async_sessionmaker[AsyncSession] | None = None
    redis: Redis | None = None
    producer: AIOKafkaProducer | None = None
    verifier: JwksVerifier | None = None
    consumers: list[ConsumerRunner] = field(default_factory=list)
    #: Checks of the blocking infrastructure (database, Kafka): a consumer asks them before it
    #: calls an unclassified failure permanent.
    probes: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def probe(self) -> None:
        """Raise if the database or Kafka this process uses cannot be reached now."""
        for check in self.probes:
            await check()

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        assert self.session_factory is not None, "database not attached"
        return self.session_factory

    @property
    def kafka(self) -> AIOKafkaProducer:
        assert self.producer is not None, "kafka not attached"
        return self.producer

    @property
    def cache(self) -> Redis:
        assert self.redis is not None, "redis not attached"
        return self.redis

    def faults(self) -> FaultFlags:
        return FaultFlags(self.cache, enabled=self.settings.FAULT_INJECTION)

    def add_consumer(
        self,
        group_id: str,
        topics: list[str],
        handler: Handler,
        *,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> ConsumerRunner:
        """A consumer loop (logical topic names) stopped in the CONSUMERS phase;
        ``on_dead_letter`` is called after a message was dead-lettered (a saga participant
        passes its ``on_dead_letter`` to answer the command with a FAILURE reply)."""
        s = self.settings
        runner = ConsumerRunner(
            kafka=s.kafka_connection(),
            topics=[s.topic(t) for t in topics],
            group_id=f"{s.KAFKA_TOPIC_PREFIX}{group_id}",
            handler=handler,
            producer=lambda: self.kafka,
            service=s.SERVICE_NAME,
            max_attempts=s.KAFKA_MAX_ATTEMPTS,
            retry_backoff=s.CONSUMER_RETRY_BACKOFF_SECONDS,
            retry_backoff_max=s.CONSUMER_RETRY_BACKOFF_MAX_SECONDS,
            probe=self.probe,
            on_dead_letter=on_dead_letter,
        )
        self.consumers.append(runner)
        self.runtime.add_background(f"consumer {group_id}", runner, Phase.CONSUMERS)
        # not ready while it waits out a transient failure (docs/CONVENTIONS.md "Failures of
        # consumers")
        self.runtime.health.add_check(f"consumer {group_id}", runner.check)
        return runner

    def add_saga_participant(self, participant: SagaParticipant[Any]) -> ConsumerRunner:
        """The participant's consumer: group ``<service>-saga`` on ``saga.<service>.commands``;
        a command dead-lettered there is answered with a FAILURE reply (``on_dead_letter``), so
        its saga does not wait for a reply that never comes."""
        return self.add_consumer(
            f"{participant.service}-saga",
            [command_topic(participant.service)],
            participant.handle,
            on_dead_letter=participant.on_dead_letter,
        )

    def add_checkpoint_report(self) -> None:
        """A worker's periodic task: every stored projection checkpoint (rebuilds included) as
        the ``projection_checkpoint_offset`` gauge, every ``CHECKPOINT_REPORT_SECONDS``
        (``chassis.read_model.checkpoint_report``)."""
        name = "projection checkpoint report"
        task = PeriodicTask(
            name,
            checkpoint_report(self.sessions, self.settings.SERVICE_NAME),
            self.settings.CHECKPOINT_REPORT_SECONDS,
        )
        self.runtime.add_background(name, task, Phase.CONSUMERS)

    def add_outbox_relay(self) -> OutboxRelay:
        s = self.settings
        relay = OutboxRelay(
            self.sessions,
            lambda: self.kafka,
            service=s.SERVICE_NAME,
            topic_prefix=s.KAFKA_TOPIC_PREFIX,
            poll_seconds=s.OUTBOX_POLL_SECONDS,
            housekeeping_seconds=s.OUTBOX_HOUSEKEEPING_SECONDS,
            batch_size=s.OUTBOX_BATCH_SIZE,
            backoff=Backoff(
                initial=s.CONSUMER_RETRY_BACKOFF_SECONDS, cap=s.CONSUMER_RETRY_BACKOFF_MAX_SECONDS
            ),
        )
        self.runtime.add_background("outbox relay", relay, Phase.RELAY)
        return relay


def attach(
    settings: BaseServiceSettings,
    runtime: Runtime,
    *,
    database: bool = True,
    redis: bool = True,
    kafka: bool = False,
    verifier: bool = True,
) -> Resources:
    """Create clients (not yet connected) and register their startup, readiness and shutdown."""
    res = Resources(settings, runtime)
    if database:
        engine = create_engine(settings.DATABASE_URL, pool_size=settings.DATABASE_POOL_SIZE)
        res.engine = engine
        res.session_factory = create_session_factory(engine)

        async def check_db() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        runtime.on_startup("connect to PostgreSQL", check_db)
        runtime.health.add_check("postgres", check_db)
        res.probes.append(check_db)
        runtime.on_shutdown("database pool", engine.dispose, Phase.POOLS)
    if redis:
        client = create_redis(settings.REDIS_URL)
        res.redis = client

        async def check_redis() -> None:
            await client.ping()

        # Redis holds caches, counters and flags the process works around when it is down
        # (docs/CONVENTIONS.md "Degraded dependencies"): shown in the detail and a metric, never
        # "not ready".
        runtime.health.add_check("redis", check_redis, degraded=True)
        runtime.on_shutdown("redis pool", client.aclose, Phase.POOLS)
    if kafka:

        async def start_producer() -> None:
            # aiokafka binds to the running loop, so the producer is created here, not at import
            res.producer = create_producer(settings.kafka_connection(), settings.SERVICE_NAME)
            await res.producer.start()

        async def check_kafka() -> None:
            await res.kafka.client.fetch_all_metadata()

        async def stop_producer() -> None:
            if res.producer is not None:
                await res.producer.stop()

        runtime.on_startup("connect to Kafka", start_producer)
        runtime.health.add_check("kafka", check_kafka)
        res.probes.append(check_kafka)
        runtime.on_shutdown("kafka producer (flush)", stop_producer, Phase.RELAY)
    if verifier:
        # installed on the app with chassis.auth.install_verifier (readiness, shutdown)
        res.verifier = JwksVerifier.from_settings(settings)
    return res
