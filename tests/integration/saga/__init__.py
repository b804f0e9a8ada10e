"""Integration tests of the saga orchestrator against real Postgres, Kafka and Redis."""
