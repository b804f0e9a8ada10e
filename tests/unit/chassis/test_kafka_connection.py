"""KafkaConnection: settings become aiokafka options, and an incomplete TLS/SASL setup fails at startup."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from chassis.messaging.connection import KafkaConnection, KafkaConnectionError, kafka_options
from chassis.settings import BaseServiceSettings


def _ca_file(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "msa test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_bare_address_is_a_plaintext_connection() -> None:
    assert kafka_options("broker:9092") == {
        "bootstrap_servers": "broker:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_carries_the_credentials_and_a_verifying_tls_context(tmp_path: Path) -> None:
    connection = KafkaConnection(
        "b-1.kafka.example.com:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="board",
        sasl_password="s3cret",
        ssl_cafile=str(_ca_file(tmp_path)),
    )

    options = connection.client_options()

    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "b-1.kafka.example.com:9096",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "board",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    subjects = [str(c["subject"]) for c in context.get_ca_certs()]
    assert any("msa test CA" in subject for subject in subjects), subjects
    assert "s3cret" not in repr(connection)


def test_tls_without_sasl_has_a_context_and_no_credentials() -> None:
    options = KafkaConnection("broker:9093", security_protocol="SSL").client_options()

    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs KAFKA_SASL_MECHANISM"),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
            },
            "needs KAFKA_SASL_MECHANISM",
        ),
        ({"ssl_cafile": "/etc/ca.pem"}, "does not use TLS"),
    ],
)
def test_an_incomplete_connection_is_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaConnectionError, match=message):
        KafkaConnection("broker:9092", **fields)  # type: ignore[arg-type]


def test_settings_refuse_sasl_without_credentials_when_the_process_starts() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME"):
        BaseServiceSettings(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="PLAIN")


def test_settings_build_the_connection_and_keep_the_password_secret() -> None:
    settings = BaseServiceSettings(
        KAFKA_BOOTSTRAP_SERVERS="b-1:9096,b-2:9096",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME="qna",
        KAFKA_SASL_PASSWORD="pw-from-a-secret",
    )

    connection = settings.kafka_connection()

    assert (connection.bootstrap_servers, connection.sasl_username) == ("b-1:9096,b-2:9096", "qna")
    assert connection.sasl_password == "pw-from-a-secret"
    assert "pw-from-a-secret" not in repr(settings)
