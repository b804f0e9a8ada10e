"""Trusted proxy hops: ``FORWARDED_ALLOW_IPS`` is a checked setting, and ``serve`` hands it to uvicorn.

Kind: one client's requests degrade another's. Whoever may set ``X-Forwarded-For`` picks the
client address that rate limits and login throttling count by; it must be an explicit list,
not uvicorn's environment default (loopback), and the gateway at the edge trusts no one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from chassis import runner
from chassis.health import Health
from chassis.settings import BaseServiceSettings
from gateway.config import Settings as GatewaySettings


def test_services_trust_loopback_and_the_gateway_trusts_no_one_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert BaseServiceSettings().forwarded_allow_ips() == ["127.0.0.1/32", "::1/128"]
    assert GatewaySettings().forwarded_allow_ips() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.244.0.0/16", ["10.244.0.0/16"]),
        (" 10.0.0.0/8 , 192.0.2.7,fd00::/8 ", ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]),
        ("", []),
    ],
)
def test_a_comma_separated_list_of_ips_and_cidrs(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    assert BaseServiceSettings().forwarded_allow_ips() == expected
    assert GatewaySettings().forwarded_allow_ips() == expected


@pytest.mark.parametrize("value", ["*", "localhost", "10.0.0.1/8", "300.1.1.1"])
def test_anything_else_fails_at_startup(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """uvicorn would keep a malformed entry as a string that never matches, silently."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS"):
        BaseServiceSettings()


class NoServer:
    """Stands in for ``GracefulServer``: keeps the config instead of serving."""

    configs: ClassVar[list[uvicorn.Config]] = []

    def __init__(self, config: uvicorn.Config, health: Health, drain_seconds: float) -> None:
        self.configs.append(config)
        self.started = True

    def run(self) -> None:
        return None


@pytest.mark.parametrize(
    ("allowed", "proxy_headers"), [(["10.244.0.0/16"], True), ([], False)], ids=str
)
def test_serve_passes_the_list_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, allowed: list[str], proxy_headers: bool
) -> None:
    # What uvicorn would otherwise trust on its own: must make no difference.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    monkeypatch.setattr(runner, "GracefulServer", NoServer)
    app = FastAPI()
    app.state.health = Health()
    with pytest.raises(SystemExit) as exited:
        runner.serve(
            app,
            host="127.0.0.1",
            port=0,
            drain_seconds=0,
            timeout_seconds=1,
            forwarded_allow_ips=allowed,
        )
    assert exited.value.code == 0
    config: Any = NoServer.configs[-1]
    assert config.proxy_headers is proxy_headers
    assert config.forwarded_allow_ips == allowed
