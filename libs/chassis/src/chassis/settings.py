"""Externalized configuration (12-factor III): every setting comes from the environment."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Annotated, Any, Self

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chassis.messaging.connection import KafkaConnection, SaslMechanism, SecurityProtocol


class BaseServiceSettings(BaseSettings):
    """Settings every service process shares. Subclass it once per service."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=True)

    SERVICE_NAME: str = "service"
    LOG_LEVEL: str = "INFO"

    HTTP_HOST: str = "127.0.0.1"
    HTTP_PORT: int = 8000
    WORKER_PORT: int = 9100
    #: The peers whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed (comma-separated
    #: IPs or CIDRs; empty trusts no one). A request's client address (rate limits, login
    #: throttling, logs) is then the last address in the chain not added by one of them; from
    #: anyone else the headers are ignored and the client is the TCP peer. A service trusts
    #: what reaches it, the gateway: loopback locally, the pod network in Kubernetes where a
    #: NetworkPolicy admits only the gateway. The gateway overrides the default (no one).
    #: A malformed entry fails at startup (uvicorn would silently compare it as a string).
    FORWARDED_ALLOW_IPS: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=lambda: [ip_network("127.0.0.1"), ip_network("::1")]
    )

    DATABASE_URL: str = ""
    DATABASE_POOL_SIZE: int = Field(default=10, ge=1)

    KAFKA_BOOTSTRAP_SERVERS: str = "127.0.0.1:9092"
    KAFKA_TOPIC_PREFIX: str = ""
    KAFKA_TOPIC_PARTITIONS: int = Field(default=3, ge=1)
    KAFKA_REPLICATION_FACTOR: int = Field(default=1, ge=1)
    KAFKA_MAX_ATTEMPTS: int = Field(default=3, ge=1)
    #: Backoff of a consumer waiting out a transient failure (and of the relay and worker loops
    #: during an outage): the first wait, doubling up to the cap (docs/CONVENTIONS.md "Failures of
    #: consumers").
    CONSUMER_RETRY_BACKOFF_SECONDS: float = Field(default=0.1, gt=0)
    CONSUMER_RETRY_BACKOFF_MAX_SECONDS: float = Field(default=10.0, gt=0)
    #: TLS and SASL for a managed Kafka (e.g. SASL_SSL + SCRAM-SHA-512); PLAINTEXT locally.
    KAFKA_SECURITY_PROTOCOL: SecurityProtocol = "PLAINTEXT"
    KAFKA_SASL_MECHANISM: SaslMechanism | None = None
    KAFKA_SASL_USERNAME: str | None = None
    KAFKA_SASL_PASSWORD: SecretStr | None = None
    #: A PEM file of the CAs that signed the brokers' certificates (default: the system CAs).
    KAFKA_SSL_CAFILE: str | None = None

    REDIS_URL: str = "redis://127.0.0.1:56379/0"

    JWKS_URL: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    JWT_ISSUER: str = "msa-member"
    JWT_AUDIENCE: str = "msa"
    #: Token verification against JWKS_URL (chassis.auth.JwksVerifier): keys are cached this
    #: long, then refetched in the background while the cached ones stay in use.
    JWKS_CACHE_SECONDS: float = Field(default=300.0, gt=0)
    #: An unknown `kid` refetches the key set at most this often (rotation without a restart,
    #: but no fetch storm from tokens with made-up key ids).
    JWKS_MIN_REFETCH_SECONDS: float = Field(default=5.0, ge=0)
    #: One fetch of the key set, connecting included, gives up after this long.
    JWKS_FETCH_TIMEOUT_SECONDS: float = Field(default=3.0, gt=0)
    #: After a failed fetch, the next waits this long, doubling per consecutive failure up to
    #: the cap (±20 % jitter). Meanwhile the last good keys are used, and a token whose key is
    #: not among them gets 503 with Retry-After (docs/CONVENTIONS.md "Status codes").
    JWKS_RETRY_BACKOFF_SECONDS: float = Field(default=1.0, gt=0)
    JWKS_RETRY_BACKOFF_MAX_SECONDS: float = Field(default=30.0, gt=0)

    # --- footprint: idle workers wait on events, not on short sleeps (issue 15) ---
    #: The outbox relay's safety poll (seconds): it waits on PostgreSQL LISTEN, woken by the
    #: NOTIFY of every commit that stages events and by the loss of its LISTEN connection;
    #: the poll only catches a notification that never came. Idle cost: one short transaction
    #: per poll.
    OUTBOX_POLL_SECONDS: float = Field(default=5.0, gt=0)
    #: Period (seconds) of the relay's housekeeping: the ``outbox_pending`` gauge and the
    #: deletion of rows published more than a day ago.
    OUTBOX_HOUSEKEEPING_SECONDS: float = Field(default=30.0, gt=0)
    OUTBOX_BATCH_SIZE: int = Field(default=100, ge=1)
    #: Period of a worker's checkpoint report (``chassis.read_model.checkpoint_report``): the
    #: ``projection_checkpoint_offset`` gauge from the stored checkpoints, rebuilds included.
    CHECKPOINT_REPORT_SECONDS: float = Field(default=5.0, gt=0)

    SHUTDOWN_DRAIN_SECONDS: float = Field(default=1.0, ge=0)
    #: Bound on each step of the SIGTERM sequence (``chassis.lifecycle``): uvicorn's drain of
    #: in-flight requests, each background loop's stop, each closer. Not a bound on the whole.
    SHUTDOWN_TIMEOUT_SECONDS: float = Field(default=20.0, gt=0)

    FAULT_INJECTION: bool = False

    @field_validator("FORWARDED_ALLOW_IPS", mode="before")
    @classmethod
    def _split_addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def forwarded_allow_ips(self) -> list[str]:
        """``FORWARDED_ALLOW_IPS`` as uvicorn takes it (networks, e.g. ``10.0.0.0/8``)."""
        return [str(network) for network in self.FORWARDED_ALLOW_IPS]

    @model_validator(mode="after")
    def _kafka_connection_is_complete(self) -> Self:
        self.kafka_connection()  # a SASL protocol without credentials fails at startup
        return self

    def kafka_connection(self) -> KafkaConnection:
        """Where and how this process's Kafka clients connect."""
        password = self.KAFKA_SASL_PASSWORD
        return KafkaConnection(
            bootstrap_servers=self.KAFKA_BOOTSTRAP_SERVERS,
            security_protocol=self.KAFKA_SECURITY_PROTOCOL,
            sasl_mechanism=self.KAFKA_SASL_MECHANISM,
            sasl_username=self.KAFKA_SASL_USERNAME,
            sasl_password=password.get_secret_value() if password else None,
            ssl_cafile=self.KAFKA_SSL_CAFILE,
        )

    def topic(self, name: str) -> str:
        """Return the physical topic name; a prefix lets tests run on isolated topics."""
        return f"{self.KAFKA_TOPIC_PREFIX}{name}"
