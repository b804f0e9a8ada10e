"""Topic provisioning: every integration, command and reply topic plus its ``.dlq`` twin."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from chassis.messaging.connection import KafkaTarget, kafka_options

EVENT_TOPICS = ("member.events", "board.events", "qna.events")
COMMAND_TOPICS = ("saga.member.commands", "saga.board.commands", "saga.qna.commands")
REPLY_TOPIC = "saga.replies"
ALL_TOPICS = (*EVENT_TOPICS, *COMMAND_TOPICS, REPLY_TOPIC)


#: Integration events are the source the read models are rebuilt from: keep them forever.
#: Commands, replies and dead letters are working queues and keep the broker's default.
EVENT_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


def topic_config(name: str) -> dict[str, str]:
    base = name.rsplit(".", 1)[0] if name.endswith(".dlq") else name
    is_event_log = not name.endswith(".dlq") and any(base.endswith(t) for t in EVENT_TOPICS)
    return dict(EVENT_TOPIC_CONFIG) if is_event_log else {}


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def with_dlqs(topics: tuple[str, ...] | list[str]) -> list[str]:
    return [t for topic in topics for t in (topic, dlq(topic))]


async def ensure_topics(
    kafka: KafkaTarget,
    names: list[str],
    *,
    partitions: int = 3,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create the missing topics and wait until the broker reports them; returns those created."""
    admin = AIOKafkaAdminClient(**kafka_options(kafka), client_id="topic-provisioner")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        n,
                        num_partitions=partitions,
                        replication_factor=replication_factor,
                        topic_configs=topic_config(n),
                    )
                    for n in missing
                ]
            )
        deadline = asyncio.get_running_loop().time() + timeout
        while missing:
            present = set(await admin.list_topics())
            if all(n in present for n in missing):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"topics not created: {sorted(set(missing) - present)}")
            await asyncio.sleep(0.2)
        return missing
    finally:
        await admin.close()
