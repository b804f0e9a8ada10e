"""Externalized configuration: the gateway's address, session lifetimes and page behaviour come from the environment."""

from __future__ import annotations

from pydantic import Field

from chassis.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    """The web front end's settings (docs/web.md). Times are in seconds."""

    SERVICE_NAME: str = "web"
    HTTP_PORT: int = 8005

    #: The only upstream: the gateway's public API (a Kubernetes Service URL works unchanged).
    GATEWAY_URL: str = "http://127.0.0.1:8000"
    #: Longer than the slowest gateway route (10 s), shorter than the gateway's 15 s deadline
    #: for web, so a slow API call ends as a readable page, not as the gateway's 504.
    GATEWAY_TIMEOUT_SECONDS: float = Field(default=12.0, gt=0)
    GATEWAY_CONNECT_TIMEOUT_SECONDS: float = Field(default=1.0, gt=0)
    GATEWAY_MAX_CONNECTIONS: int = Field(default=50, ge=1)

    #: A signed-in session ends after this long without a request (sliding).
    SESSION_IDLE_SECONDS: int = Field(default=7200, ge=60)
    #: ... and at the latest this long after sign-in: member's refresh-token life (REFRESH_TOKEN_TTL_DAYS, 14 days).
    SESSION_MAX_AGE_SECONDS: int = Field(default=1_209_600, ge=60)
    #: A guest's session (it only holds the CSRF token of the forms it was shown).
    ANON_SESSION_SECONDS: int = Field(default=1800, ge=60)
    #: An access token this close to its expiry is refreshed before it is used.
    REFRESH_MARGIN_SECONDS: int = Field(default=30, ge=0)
    #: Prefix of every Redis key web writes (sessions, refresh locks).
    WEB_REDIS_KEY_PREFIX: str = "web:"

    #: How often a page with a running saga asks for its progress.
    SAGA_POLL_SECONDS: float = Field(default=1.0, gt=0)
    #: The language of a browser whose Accept-Language names none of ours.
    DEFAULT_LOCALE: str = Field(default="ko", pattern="^(ko|en)$")
