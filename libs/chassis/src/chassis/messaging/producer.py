"""Reliable producer: acks=all and idempotence, so a retried send is never written twice."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer


def create_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """Create (not start) the process's producer; start it in the lifespan."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=15000,
    )
