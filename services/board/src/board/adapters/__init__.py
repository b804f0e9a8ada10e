"""Adapters: PostgreSQL tables and repositories, the Redis view counter."""
