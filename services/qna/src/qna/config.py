"""Externalized configuration (12-factor III): the qna settings, all from the environment."""

from __future__ import annotations

from pathlib import Path

from chassis.settings import BaseServiceSettings

#: The folder holding alembic.ini and migrations/ (what ``chassis.migrations.upgrade`` needs).
SERVICE_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseServiceSettings):
    """Every qna process (api, worker, admin commands) reads this one class."""

    SERVICE_NAME: str = "qna"
    HTTP_PORT: int = 8003
    WORKER_PORT: int = 9103
    #: no default: a process without its database must fail at start, not at the first request
    DATABASE_URL: str
