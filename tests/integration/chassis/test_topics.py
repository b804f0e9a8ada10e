"""Topic provisioning against the real broker: idempotent, and a refusal no retry can fix fails fast."""

from __future__ import annotations

import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from chassis.messaging.topics import TopicsRefused, ensure_topics
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def test_topics_are_created_once_with_the_event_log_kept_forever(
    infra: Infra, topic_prefix: str
) -> None:
    names = [f"{topic_prefix}board.events", f"{topic_prefix}saga.replies"]

    assert sorted(await ensure_topics(infra.kafka_bootstrap, names, partitions=2)) == names
    assert await ensure_topics(infra.kafka_bootstrap, names, partitions=2) == []  # idempotent

    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    retention = {
        resource[3]: next(str(e[1]) for e in resource[4] if e[0] == "retention.ms")
        for response in responses
        for resource in response.resources
    }

    assert retention[names[0]] == "-1"  # the event log: rebuilds replay it from the beginning
    assert retention[names[1]] != "-1"


async def test_a_refusal_that_no_retry_fixes_fails_at_once(infra: Infra, topic_prefix: str) -> None:
    if infra.mode != "local":
        pytest.skip("needs the single-broker local Kafka")
    started = time.monotonic()

    with pytest.raises(TopicsRefused, match="InvalidReplicationFactor"):
        await ensure_topics(
            infra.kafka_bootstrap,
            [f"{topic_prefix}board.events"],
            replication_factor=3,  # one broker
            timeout=30,
        )

    assert time.monotonic() - started < 10  # not after waiting out the timeout
