"""Backing-service attachment for Kafka: the broker address with its TLS and SASL, as one value.

Every Kafka client of the chassis (producer, consumers, replay, topic admin, DLQ tools) is built
from a ``KafkaConnection``, so a managed Kafka that wants ``SASL_SSL`` with SCRAM is a matter of
settings (``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_CAFILE``), never of code.
A bare address string means a ``PLAINTEXT`` connection: the local infrastructure and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaConnectionError(ValueError):
    """The settings describe a connection no broker could accept (caught at startup)."""


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    #: A PEM bundle of the CAs to trust; None trusts the system's CAs.
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip():
            raise KafkaConnectionError("KAFKA_BOOTSTRAP_SERVERS is empty")
        if self.uses_sasl and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise KafkaConnectionError(
                f"{self.security_protocol} needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME "
                "and KAFKA_SASL_PASSWORD"
            )
        if self.ssl_cafile and not self.uses_tls:
            raise KafkaConnectionError(
                f"KAFKA_SSL_CAFILE is set but {self.security_protocol} does not use TLS"
            )

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            # verifies the broker's certificate and host name (ssl.create_default_context)
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.uses_sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return options


#: Where a Kafka client connects: a full ``KafkaConnection``, or a bare address (PLAINTEXT).
KafkaTarget = KafkaConnection | str


def kafka_options(target: KafkaTarget) -> dict[str, Any]:
    """The aiokafka keyword arguments for ``target``."""
    connection = target if isinstance(target, KafkaConnection) else KafkaConnection(target)
    return connection.client_options()
