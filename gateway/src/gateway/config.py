"""Externalized configuration: every address, limit and timeout of the gateway comes from the environment."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, IPvAnyNetwork, field_validator
from pydantic_settings import NoDecode

from chassis.settings import BaseServiceSettings
from gateway.replicas import split_urls


class Settings(BaseServiceSettings):
    """The gateway's settings. Upstream addresses are plain URLs, so Kubernetes Service DNS
    names (``http://board-api:8000``) work unchanged. ``MEMBER_URL`` ... ``SAGA_URL`` may also
    list replicas, comma-separated (``make run`` does): the gateway then balances over them
    itself, with health checks (``gateway.replicas``)."""

    SERVICE_NAME: str = "gateway"
    HTTP_PORT: int = 8000
    #: The gateway is the edge: by default it believes no one's X-Forwarded-For, so a client
    #: cannot pick its own rate-limit bucket. Behind a reverse proxy or a Kubernetes Ingress,
    #: list the proxy's addresses (deploy/k8s: the ingress controller's range).
    FORWARDED_ALLOW_IPS: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)

    MEMBER_URL: str = "http://127.0.0.1:8001"
    BOARD_URL: str = "http://127.0.0.1:8002"
    QNA_URL: str = "http://127.0.0.1:8003"
    SAGA_URL: str = "http://127.0.0.1:8004"
    #: The web front end: every page path outside the API (``routes.FRONT_END``).
    WEB_URL: str = "http://127.0.0.1:8005"

    # Empty means "the member service's JWKS": MEMBER_URL + /.well-known/jwks.json.
    # The other JWKS_* settings (cache, refetch bound, fetch timeout, backoff) are the chassis'.
    JWKS_URL: str = ""

    # Verified tokens are remembered (never past their `exp`) for at most this long; 0 disables.
    TOKEN_CACHE_SECONDS: float = Field(default=60.0, ge=0)
    TOKEN_CACHE_SIZE: int = Field(default=10_000, ge=0)
    # A member's token deny-list entry (chassis.token_denylist) is re-read from Redis after at
    # most this long: how late a withdrawal may reach this replica. 0 reads it every request.
    DENY_LIST_CACHE_SECONDS: float = Field(default=1.0, ge=0, le=5)

    # Requests per minute per user (or per client IP without a valid token); 0 disables.
    RATE_LIMIT_PER_MINUTE: int = Field(default=600, ge=0)
    RATE_LIMIT_KEY_PREFIX: str = "gateway:ratelimit:"

    # Comma-separated list of origins allowed by CORS; empty allows no cross-origin caller.
    CORS_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)

    UPSTREAM_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    #: A page may wait on the slowest API call it makes (``routes.SLOW``, 10 s), which web bounds
    #: with its own ``GATEWAY_TIMEOUT_SECONDS`` (12 s): the gateway waits longer, so web can
    #: still answer with a readable page rather than the gateway with a 504.
    WEB_TIMEOUT_SECONDS: float = Field(default=15.0, gt=0)
    UPSTREAM_CONNECT_TIMEOUT_SECONDS: float = Field(default=1.0, gt=0)
    UPSTREAM_RETRY_ATTEMPTS: int = Field(default=3, ge=1)
    UPSTREAM_RETRY_BACKOFF_SECONDS: float = Field(default=0.05, ge=0)
    UPSTREAM_RETRY_MAX_BACKOFF_SECONDS: float = Field(default=0.5, ge=0)
    UPSTREAM_MAX_CONNECTIONS: int = Field(default=100, ge=1)
    #: The largest upstream answer (as encoded) the gateway buffers and passes on; a larger
    #: one is a 502, so one runaway response cannot exhaust the gateway's memory.
    UPSTREAM_MAX_RESPONSE_BYTES: int = Field(default=16 * 1024 * 1024, ge=1024)

    #: Replicas listed in one ``*_URL``: how often each one's /readyz is read, and how long one
    #: read may take (above the chassis' 1 s bound on its own checks, so a slow dependency is
    #: still an answer). An API that gets SIGTERM turns unready for ``SHUTDOWN_DRAIN_SECONDS``
    #: before it closes its listener: that drain should be at least two intervals.
    UPSTREAM_HEALTH_CHECK_INTERVAL_SECONDS: float = Field(default=0.5, gt=0)
    UPSTREAM_HEALTH_CHECK_TIMEOUT_SECONDS: float = Field(default=1.5, gt=0)

    BREAKER_FAILURE_THRESHOLD: int = Field(default=5, ge=1)
    BREAKER_RESET_SECONDS: float = Field(default=10.0, gt=0)

    DASHBOARD_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)
    DOCS_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)

    MAX_BODY_BYTES: int = Field(default=1024 * 1024, ge=0)
    MAX_HEADER_BYTES: int = Field(default=16 * 1024, ge=1024)
    MAX_QUERY_BYTES: int = Field(default=8 * 1024, ge=256)

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def jwks_url(self) -> str:
        """``JWKS_URL``, or the first member replica's key set. The keys stay cached and in use
        while a refetch fails (``chassis.auth``), so one replica restarting costs nothing."""
        return self.JWKS_URL or f"{split_urls(self.MEMBER_URL)[0]}/.well-known/jwks.json"

    def upstream_urls(self) -> dict[str, str]:
        """Base URL of every upstream, by the name the route table uses: one URL, or several
        comma-separated (``upstream_replicas``)."""
        return {
            "member": self.MEMBER_URL,
            "board": self.BOARD_URL,
            "qna": self.QNA_URL,
            "saga": self.SAGA_URL,
            "web": self.WEB_URL,
        }

    def upstream_replicas(self) -> dict[str, list[str]]:
        """Every upstream's replica URLs (one for a single address), by name."""
        return {name: split_urls(value) for name, value in self.upstream_urls().items()}

    def upstream_timeouts(self) -> dict[str, float]:
        """Seconds for a whole exchange with each upstream, by name, where the route names none
        (``Route.timeout``): ``WEB_TIMEOUT_SECONDS`` for the front end, else
        ``UPSTREAM_TIMEOUT_SECONDS``."""
        return {
            name: self.WEB_TIMEOUT_SECONDS if name == "web" else self.UPSTREAM_TIMEOUT_SECONDS
            for name in self.upstream_urls()
        }
