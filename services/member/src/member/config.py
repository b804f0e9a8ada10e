"""Externalized configuration: every setting of the member processes comes from the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from chassis.settings import BaseServiceSettings

#: services/member: the folder holding alembic.ini and migrations/.
SERVICE_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseServiceSettings):
    """Member settings. The signing key is a secret with no default: the api refuses to start
    without it (the worker and the admin processes do not sign tokens)."""

    SERVICE_NAME: str = "member"
    HTTP_PORT: int = 8001
    WORKER_PORT: int = 9101

    DATABASE_URL: str

    JWT_PRIVATE_KEY: SecretStr | None = None
    JWT_PRIVATE_KEY_FILE: Path | None = None
    JWT_KEY_ID: str | None = None
    #: JSON list of JWK objects or PEM public keys still published after a rotation.
    JWT_PREVIOUS_PUBLIC_KEYS: Annotated[list[dict[str, Any] | str], NoDecode] = Field(
        default_factory=list
    )
    ACCESS_TOKEN_TTL_SECONDS: int = Field(default=900, ge=30, le=86400)
    REFRESH_TOKEN_TTL_DAYS: int = Field(default=14, ge=1, le=365)

    #: Password checks per email (and per member for ``current_password``) in one window; the
    #: next attempt is refused with 429 before any check (docs/services/member.md: 5 a minute).
    LOGIN_MAX_FAILURES: int = Field(default=5, ge=1)
    LOGIN_FAILURE_WINDOW_SECONDS: int = Field(default=60, ge=1)
    #: Requests per minute per client address (``request.client.host``) to ``POST
    #: /api/auth/login`` and to ``POST /api/members``; 0 disables the limit.
    LOGIN_PER_ADDRESS_PER_MINUTE: int = Field(default=30, ge=0)
    SIGN_UP_PER_ADDRESS_PER_MINUTE: int = Field(default=10, ge=0)
    #: Prefix of every Redis key of the member api (tests isolate with it).
    REDIS_KEY_PREFIX: str = "member:"

    ADMIN_EMAIL: str | None = None
    ADMIN_PASSWORD: SecretStr | None = None
    ADMIN_NICKNAME: str = "admin"

    @field_validator("JWT_PREVIOUS_PUBLIC_KEYS", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        """An empty variable means none; otherwise the variable holds a JSON list."""
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("JWT_KEY_ID", "ADMIN_EMAIL", "JWT_PRIVATE_KEY_FILE", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("JWT_PRIVATE_KEY", "ADMIN_PASSWORD", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value
