"""Reliable producer: acks=all and idempotence, so a retried send is never written twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from aiokafka import AIOKafkaProducer

from chassis.messaging.connection import KafkaTarget, kafka_options

#: A producer, or a function returning the process's producer once the lifespan created it
#: (aiokafka clients must be created inside the running event loop).
ProducerSource: TypeAlias = AIOKafkaProducer | Callable[[], AIOKafkaProducer]


def resolve(source: ProducerSource) -> AIOKafkaProducer:
    if isinstance(source, AIOKafkaProducer):
        return source
    return source()


def create_producer(kafka: KafkaTarget, client_id: str) -> AIOKafkaProducer:
    """Create (not start) the process's producer; start it in the lifespan."""
    return AIOKafkaProducer(
        **kafka_options(kafka),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        # No added wait: a record goes out at once. Under load records still share a request,
        # because they gather while the previous request to the broker is in flight; a linger
        # would add its milliseconds to every hop of a saga (six per answer acceptance).
        linger_ms=0,
        request_timeout_ms=15000,
    )
