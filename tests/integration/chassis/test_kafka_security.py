"""Kafka over SASL against a real broker: the chassis clients authenticate, and a bad login is refused."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from chassis.messaging.connection import KafkaConnection
from chassis.messaging.consumer import replay
from chassis.messaging.envelope import Envelope, to_kafka
from chassis.messaging.producer import create_producer
from chassis.messaging.topics import ensure_topics
from chassis.settings import BaseServiceSettings
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


def _sasl_listener(infra: Infra) -> str:
    if infra.kafka_sasl_bootstrap is None:
        pytest.skip("the SASL listener is part of the local broker (deploy/local) only")
    return infra.kafka_sasl_bootstrap


async def test_topics_producer_and_consumer_authenticate_with_sasl_settings(
    infra: Infra, topics: str
) -> None:
    settings = BaseServiceSettings(
        KAFKA_BOOTSTRAP_SERVERS=_sasl_listener(infra),
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="msa",
        KAFKA_SASL_PASSWORD="msa-local-pw",
        KAFKA_TOPIC_PREFIX=topics,
    )
    kafka = settings.kafka_connection()
    topic = settings.topic("secure.events")

    assert await ensure_topics(kafka, [topic], partitions=1) == [topic]
    producer = create_producer(kafka, "sasl-test")
    await producer.start()
    try:
        sent = Envelope.new("Secured", "tests", {"n": 1}, key="k1")
        key, value, headers = to_kafka(sent)
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    received: list[Envelope] = []

    async def collect(env: Envelope) -> None:
        received.append(env)

    await replay(kafka, [topic], collect, idle_timeout=1.0)

    assert [(e.id, e.type, e.data) for e in received] == [(sent.id, "Secured", {"n": 1})]


@pytest.mark.parametrize(
    "connection",
    [
        pytest.param(
            lambda address: KafkaConnection(
                address,
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="PLAIN",
                sasl_username="msa",
                sasl_password="not-the-password",
            ),
            id="wrong password",
        ),
        pytest.param(lambda address: KafkaConnection(address), id="no SASL at all"),
    ],
)
async def test_the_sasl_listener_refuses_a_client_that_does_not_authenticate(
    infra: Infra, connection: object
) -> None:
    assert callable(connection)
    target: KafkaConnection = connection(_sasl_listener(infra))
    producer = create_producer(target, "sasl-refused")
    try:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(producer.start(), timeout=30)
    finally:
        await producer.stop()
