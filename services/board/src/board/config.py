"""Externalized configuration (12-factor III): the board service's settings, from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from chassis.settings import BaseServiceSettings

#: The folder holding alembic.ini and migrations/ (what ``chassis.migrations.upgrade`` needs).
SERVICE_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseServiceSettings):
    """Settings of every board process (api, worker, migrate, rebuild-read-model)."""

    SERVICE_NAME: str = "board"
    HTTP_PORT: int = 8002
    WORKER_PORT: int = 9102

    #: No default: a process without its database must not start.
    DATABASE_URL: str

    #: Prefix of the service's Redis keys (view counters, first pages); tests isolate themselves with it.
    REDIS_KEY_PREFIX: str = "board:"
    #: How long a board's cached first page lives. The worker invalidates it on every change,
    #: so this only bounds an invalidation that was missed. 0 turns the cache off (the API).
    FIRST_PAGE_CACHE_SECONDS: float = Field(default=30.0, ge=0)
    #: How often the worker moves view counts from Redis to PostgreSQL and the post list.
    VIEW_FLUSH_SECONDS: float = Field(default=5.0, gt=0)
