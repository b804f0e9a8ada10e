"""Integration tests of the qna service against real PostgreSQL, Kafka and Redis."""
