"""Consumer throughput rules on real Kafka: partitions in parallel, one offset commit per batch, a rebalance that waits for the work in hand, a crash mid-batch absorbed by the inbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork
from chassis.messaging.consumer import POLL_MS
from chassis.messaging.envelope import Envelope, to_kafka
from chassis.messaging.topics import ensure_topics
from tests.integration.chassis.scratch import increment, widget_count, widgets
from tests.support.infra import Infra, wait_for
from tests.support.kafka import runner_for, running

pytestmark = pytest.mark.integration


async def send_all(
    producer: AIOKafkaProducer, topic: str, envelopes: list[Envelope], partition: int | None = None
) -> None:
    for env in envelopes:
        key, value, headers = to_kafka(env)
        await producer.send(topic, value=value, key=key, headers=headers, partition=partition)
    await producer.flush()


def touches(widget: str, n: int) -> list[Envelope]:
    return [
        Envelope.new("WidgetTouched", "tests", {"widget_id": widget}, key=widget) for _ in range(n)
    ]


async def committed(infra: Infra, group: str, tp: TopicPartition) -> int | None:
    probe = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=group)
    await probe.start()
    try:
        offset: int | None = await probe.committed(tp)
        return offset
    finally:
        await probe.stop()


async def test_partitions_are_handled_concurrently_each_in_offset_order(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    """Three partitions, a handler that waits until three messages are in hand at once: a
    consumer that handles one message at a time never gets there."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=3)
    for partition in range(3):
        await send_all(producer, topic, touches(f"w{partition}", 5), partition=partition)
    in_hand = 0
    most_in_hand = 0
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    async def handler(env: Envelope) -> None:
        nonlocal in_hand, most_in_hand
        in_hand += 1
        most_in_hand = max(most_in_hand, in_hand)
        try:
            seen[env.partition].append(env.offset)
            await asyncio.sleep(0.05)
        finally:
            in_hand -= 1

    runner = runner_for(infra, topic, f"{topics}parallel", handler, producer)
    async with running(runner):

        async def all_seen() -> bool:
            return sum(map(len, seen.values())) == 15

        await wait_for(all_seen, timeout=30, message="15 messages handled")
    assert most_in_hand == 3
    assert seen == {p: [0, 1, 2, 3, 4] for p in range(3)}


async def test_offsets_are_committed_once_per_batch_not_per_message(
    infra: Infra, topics: str, producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    await send_all(producer, topic, touches("w", 40), partition=0)
    commits: list[dict[TopicPartition, int]] = []
    real_commit = AIOKafkaConsumer.commit

    async def counted(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        commits.append(dict(offsets))
        await real_commit(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", counted)
    handled = 0

    async def handler(_: Envelope) -> None:
        nonlocal handled
        handled += 1

    group = f"{topics}batched"
    runner = runner_for(infra, topic, group, handler, producer)
    async with running(runner):

        async def all_handled() -> bool:
            return handled == 40 and bool(commits) and commits[-1].get(tp) == 40

        tp = TopicPartition(topic, 0)
        await wait_for(all_handled, timeout=30, message="40 handled and committed")
    assert len(commits) < 10, commits  # one per fetched batch; 40 with a commit per message
    assert await committed(infra, group, tp) == 40


async def test_a_consumer_killed_mid_batch_leaves_every_effect_applied_exactly_once(
    infra: Infra,
    topics: str,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    engine: AsyncEngine,
) -> None:
    """The batch's offsets are committed after the batch: a crash in the middle loses the
    commit, the next member handles the finished messages again, and the inbox makes those
    repeats change nothing (at-least-once delivery, effects exactly once)."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    async with engine.begin() as conn:
        await conn.execute(widgets.insert().values(id="w", count=0))
    await send_all(producer, topic, touches("w", 30), partition=0)
    group = f"{topics}crash"
    calls = 0
    crash_now = asyncio.Event()

    async def handle(env: Envelope) -> None:
        nonlocal calls
        calls += 1
        async with UnitOfWork(sessions, source="consumer") as uow:
            if await uow.first_delivery("widget-counter", env.id):
                await uow.session.execute(increment(env.data["widget_id"]))
            await uow.commit()
        if calls == 10:
            crash_now.set()
            await asyncio.sleep(30)  # the kill comes while this batch is in hand

    victim = runner_for(infra, topic, group, handle, producer)
    task = asyncio.create_task(victim.run())
    await asyncio.wait_for(crash_now.wait(), 30)
    task.cancel()  # killed: no commit, no leave-group courtesy of a clean stop
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await widget_count(engine, "w") == 10
    before = await committed(infra, group, TopicPartition(topic, 0))
    assert before is None or before < 10  # the finished messages were not committed yet

    calls = 0
    successor = runner_for(infra, topic, group, handle, producer)
    async with running(successor):

        async def all_applied() -> bool:
            return await widget_count(engine, "w") == 30

        await wait_for(all_applied, timeout=60, message="the successor handled the rest")
        await asyncio.sleep(0.5)
    assert await widget_count(engine, "w") == 30  # 30 distinct events, each applied once
    assert calls >= 30  # the ten finished before the kill came again
    async with engine.connect() as conn:
        inbox = await conn.scalar(
            text("SELECT count(*) FROM inbox_messages WHERE consumer = 'widget-counter'")
        )
    assert inbox == 30


async def test_a_rebalance_waits_for_the_message_in_hand_and_commits_it_before_letting_go(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    """While the original owner handles a message, a newcomer joins and takes the partition
    (the range assignor gives it to the lowest member id). The revocation waits for that
    message, commits it, and only then lets go: the newcomer starts after it, so no message is
    handled by both members."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    await send_all(producer, topic, touches("w", 5), partition=0)
    group = f"{topics}handover"
    handled: dict[str, list[int]] = {"original": [], "newcomer": []}
    slow_message_started = asyncio.Event()

    async def original_handler(env: Envelope) -> None:
        if env.offset == 2:
            slow_message_started.set()
            await asyncio.sleep(4)  # the rebalance starts meanwhile
        handled["original"].append(env.offset)

    async def newcomer_handler(env: Envelope) -> None:
        handled["newcomer"].append(env.offset)

    original = runner_for(infra, topic, group, original_handler, producer, client_id="zz-original")
    async with running(original):
        await asyncio.wait_for(slow_message_started.wait(), 30)
        newcomer = runner_for(
            infra, topic, group, newcomer_handler, producer, client_id="aa-newcomer"
        )
        async with running(newcomer):

            async def handed_over() -> bool:
                return bool(handled["newcomer"]) and handled["newcomer"][-1] == 4

            await wait_for(handed_over, timeout=60, message="the newcomer read to the end")
            await asyncio.sleep(0.5)
    assert handled["original"] == [0, 1, 2]  # it finished the message in hand, then stopped
    assert handled["newcomer"] == [3, 4]  # from the offset the revocation committed


async def test_event_age_is_observed_per_topic_and_group(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    group = f"{topics}aged"
    five_seconds_old = Envelope(
        id=str(uuid.uuid4()),
        type="WidgetTouched",
        source="tests",
        data={"widget_id": "w"},
        key="w",
        time=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5),
    )
    await send_all(producer, topic, [five_seconds_old])
    handled = asyncio.Event()

    async def handler(_: Envelope) -> None:
        handled.set()

    labels = {"service": "chassis-tests", "topic": topic, "group": group}
    async with running(runner_for(infra, topic, group, handler, producer)):
        await asyncio.wait_for(handled.wait(), 30)

        async def observed() -> bool:
            return REGISTRY.get_sample_value("event_age_seconds_count", labels) == 1.0

        await wait_for(observed, timeout=5, message="the age observed after the handler")
    age = REGISTRY.get_sample_value("event_age_seconds_sum", labels)
    assert age is not None
    assert 5.0 <= age < 30.0
    assert REGISTRY.get_sample_value("event_age_seconds_bucket", {**labels, "le": "1.0"}) == 0.0


async def test_stop_interrupts_an_idle_poll(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    """An idle consumer waits up to POLL_MS for records; stopping it must not wait that out."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)

    async def handler(_: Envelope) -> None:
        return None

    runner = runner_for(infra, topic, f"{topics}idle", handler, producer)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.assigned.wait(), 30)
    await asyncio.sleep(0.3)  # inside a poll now
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runner.stop()
    await asyncio.wait_for(task, 30)
    # leaving the group takes a round trip or two; waiting out the poll would take up to POLL_MS
    assert POLL_MS >= 1000
    assert loop.time() - started < 1.0
