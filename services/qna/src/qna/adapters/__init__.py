"""Adapters: SQLAlchemy tables and repositories (the ports to PostgreSQL)."""
