"""Integration tests of the member service against real PostgreSQL, Kafka and Redis."""
