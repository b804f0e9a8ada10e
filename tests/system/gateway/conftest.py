"""Real processes for the gateway's system tests: echo upstreams standing in for the four services and
the web front end, and gateway processes configured per test module. Nothing here needs the real
services."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, cli, free_port
from tests.support.tokens import TokenIssuer

UPSTREAMS = ("member", "board", "qna", "saga", "web")


def url(process: ServiceProcess) -> str:
    return f"http://127.0.0.1:{process.port}"


def echo_process(
    name: str, *, port: int | None = None, jwks_file: Path | None = None
) -> ServiceProcess:
    """An echo upstream answering as ``name`` (see echo_upstream.py)."""
    port = port or free_port()
    env = {"ECHO_NAME": name, "ECHO_PORT": str(port)}
    if jwks_file is not None:
        env["ECHO_JWKS_FILE"] = str(jwks_file)
    argv = [sys.executable, "-m", "tests.system.gateway.echo_upstream"]
    return ServiceProcess(f"echo {name}", argv, env, port=port)


#: The test gateways' cap on an upstream answer (the echoes' usual answers are far smaller).
MAX_RESPONSE_BYTES = 64 * 1024


def gateway_process(upstreams: dict[str, str], redis_url: str, **overrides: str) -> ServiceProcess:
    """``gateway api`` in front of ``upstreams`` (name -> URL), with test-friendly limits."""
    port = free_port()
    env = {
        "SERVICE_NAME": "gateway",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        **{f"{name.upper()}_URL": address for name, address in upstreams.items()},
        "JWKS_URL": "",  # derived from MEMBER_URL, whatever the environment says
        "JWKS_MIN_REFETCH_SECONDS": "0.5",
        "REDIS_URL": redis_url,
        "RATE_LIMIT_PER_MINUTE": "100000",
        "RATE_LIMIT_KEY_PREFIX": f"test:{uuid.uuid4().hex[:10]}:ratelimit:",
        "UPSTREAM_TIMEOUT_SECONDS": "1",
        "DASHBOARD_TIMEOUT_SECONDS": "1",
        "BREAKER_FAILURE_THRESHOLD": "1000",
        "CORS_ORIGINS": "http://localhost:3000",
        "UPSTREAM_MAX_RESPONSE_BYTES": str(MAX_RESPONSE_BYTES),
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_LEVEL": "INFO",
        **overrides,
    }
    return ServiceProcess("gateway", cli("gateway", "api"), env, port=port)


def start_all(*processes: ServiceProcess) -> None:
    """Start together (they boot in parallel), then wait for each."""
    for process in processes:
        process.start()
    for process in processes:
        process.wait_ready(timeout=60)


def stop_all(*processes: ServiceProcess) -> None:
    for process in processes:
        process.terminate(timeout=15)


@pytest.fixture(scope="session")
def jwks_file(tmp_path_factory: pytest.TempPathFactory, issuer: TokenIssuer) -> Path:
    """The member echo serves this file as its JWKS; tests append keys to rotate."""
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    return path


@pytest.fixture(scope="session")
def echoes(jwks_file: Path) -> Iterator[dict[str, ServiceProcess]]:
    processes = {
        name: echo_process(name, jwks_file=jwks_file if name == "member" else None)
        for name in UPSTREAMS
    }
    try:
        start_all(*processes.values())
        yield processes
    finally:
        stop_all(*processes.values())


@pytest.fixture(scope="session")
def echo_urls(echoes: dict[str, ServiceProcess]) -> dict[str, str]:
    return {name: url(process) for name, process in echoes.items()}


@pytest.fixture(scope="session")
def gateway(echo_urls: dict[str, str], infra: Infra) -> Iterator[ServiceProcess]:
    """The gateway most tests share: every upstream up, a 1 s upstream timeout."""
    process = gateway_process(echo_urls, infra.redis_url)
    try:
        start_all(process)
        yield process
    finally:
        stop_all(process)


@pytest.fixture
async def client(gateway: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url(gateway), timeout=15) as c:
        yield c


async def set_echo_mode(
    echo: ServiceProcess, *, status: int | None = None, delay: float = 0.0
) -> None:
    """How ``echo`` answers every request from now on (sent to the echo directly)."""
    async with httpx.AsyncClient(base_url=url(echo), timeout=5) as c:
        response = await c.put("/_echo/mode", json={"status": status, "delay": delay})
        response.raise_for_status()


async def metric(gateway: ServiceProcess, name: str, **labels: str) -> float | None:
    """One sample of the gateway's /metrics, None when absent."""
    async with httpx.AsyncClient(base_url=url(gateway), timeout=5) as c:
        text = (await c.get("/metrics")).text
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        found = set(head[head.find("{") + 1 : head.rfind("}")].split(",")) if "{" in head else set()
        if wanted <= found:
            return float(value)
    return None
