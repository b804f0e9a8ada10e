"""Topic provisioning: every integration, command and reply topic plus its ``.dlq`` twin."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

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


class TopicsRefused(RuntimeError):
    """The broker refused to create a topic for a reason a retry cannot fix (e.g. its config)."""


async def ensure_topics(
    kafka: KafkaTarget,
    names: list[str],
    *,
    partitions: int = 3,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create the missing topics and wait until the broker lists them; returns those created.

    Each round asks for the topics still missing and reads every per-topic error code of the
    answer. A broker that has just started may answer with a retriable error (its controller
    is not ready yet) or time out: the next round asks again, until ``timeout``. An error that
    no retry fixes (an invalid replication factor or config) raises ``TopicsRefused`` at once.
    """
    admin = AIOKafkaAdminClient(**kafka_options(kafka), client_id="topic-provisioner")
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        created: list[str] = []
        last_errors: dict[str, str] = {}
        while True:
            present = set(await admin.list_topics())
            missing = [n for n in names if n not in present]
            if not missing:
                return created
            if loop.time() > deadline:
                raise TimeoutError(
                    f"topics not created: {sorted(missing)}; last errors: {last_errors or 'none'}"
                )
            last_errors = {}
            try:
                answer = await admin.create_topics(
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
            except KafkaError as exc:  # the request itself failed (e.g. timed out): ask again
                last_errors["request"] = f"{type(exc).__name__}: {exc}"
            else:
                for topic, code, *message in answer.topic_errors:
                    error = for_code(code)
                    if code == 0:
                        created.append(topic)
                    elif error is TopicAlreadyExistsError:
                        continue  # another provisioner, or an earlier round, made it
                    elif error.retriable:
                        last_errors[topic] = error.__name__
                    else:
                        detail = " ".join(str(m) for m in message if m)
                        raise TopicsRefused(f"{topic}: {error.__name__} {detail}".rstrip())
            await asyncio.sleep(0.5 if last_errors else 0.2)
    finally:
        await admin.close()
