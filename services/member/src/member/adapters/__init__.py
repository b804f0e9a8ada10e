"""Adapters: the member context's ports implemented on PostgreSQL, Redis, argon2 and JWT."""
