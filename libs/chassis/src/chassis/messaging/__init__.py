"""Messaging: events over Kafka with a transactional outbox, an idempotent inbox and dead letters."""
