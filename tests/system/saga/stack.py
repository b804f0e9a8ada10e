"""The whole saga stack as real processes: member, board, qna and saga, each an api and a worker, and the gateway.

Fresh databases (migrated with each CLI's ``migrate``), one topic prefix, a Redis database of
the saga tests' own (fault flags are global keys), fault injection on, and a JWT key for member.
Also a ``gateway api`` process in front of the four apis (the API gateway pattern end to end;
on unless turned off) and, opt-in, a ``web api`` process behind it serving the pages (the
front end the browser tests drive).

Run it by hand for the latency benchmark (Ctrl-C stops it)::

    uv run python -m tests.system.saga.stack
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis.messaging.topics import ALL_TOPICS, ensure_topics, with_dlqs
from tests.support.infra import REPO, Infra, provide_infra
from tests.support.processes import ServiceProcess, cli, free_port

SERVICES = ("member", "board", "qna", "saga")
#: Fault flags are global Redis keys: the saga system tests keep them in a database of their own.
REDIS_DB = 12
ADMIN_EMAIL = "admin@saga-tests.example"
ADMIN_PASSWORD = "admin-password-123"
#: Eight Python processes starting at once on a small, shared machine take their time.
READY_TIMEOUT = 180.0


@dataclass
class Stack:
    prefix: str
    redis_url: str
    databases: dict[str, str]
    env: dict[str, dict[str, str]]
    ports: dict[str, int]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def url(self, service: str) -> str:
        """The api of ``service`` (or ``gateway``, when the stack runs one)."""
        return f"http://127.0.0.1:{self.ports[f'{service}-api']}"

    def worker_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[f'{service}-worker']}"

    @property
    def gateway_url(self) -> str:
        """The gateway in front of the four apis (and of web's pages, when the stack runs web)."""
        return f"http://127.0.0.1:{self.ports['gateway-api']}"

    @property
    def web_url(self) -> str:
        """The web front end itself; a browser goes through ``gateway_url``."""
        return f"http://127.0.0.1:{self.ports['web-api']}"

    def launch(self, name: str) -> ServiceProcess:
        """Start ``<service>-api``, ``<service>-worker``, ``gateway-api`` or ``web-api`` without
        waiting."""
        service, kind = name.split("-")
        process = ServiceProcess(name, cli(service, kind), self.env[service], port=self.ports[name])
        self.processes[name] = process.start()
        return process

    def start(self, name: str) -> ServiceProcess:
        """Start a process and wait until it is ready."""
        process = self.launch(name)
        process.wait_ready(timeout=READY_TIMEOUT)
        return process

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, no cleanup."""
        self.processes[name].kill()

    def restart(self, name: str) -> ServiceProcess:
        self.processes[name].terminate()
        return self.start(name)

    def logs(self, name: str) -> str:
        return self.processes[name].output()

    def stop(self) -> None:
        """Stop every process: the gateway first (no new request comes in), then web, whose
        pages in flight may still call the APIs, then the services (in the order started)."""
        edge = [n for n in ("gateway-api", "web-api") if n in self.processes]
        for name in [*edge, *(n for n in self.processes if n not in edge)]:
            self.processes[name].terminate(timeout=20)


def _jwt_private_key() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _migrate(service: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        cli(service, "migrate"),
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{service} migrate failed:\n{result.stdout}\n{result.stderr}")


@contextlib.asynccontextmanager
async def running_stack(
    infra: Infra,
    *,
    step_timeout: float = 30.0,
    extra_env: dict[str, str] | None = None,
    saga_env: dict[str, str] | None = None,
    gateway: bool = True,
    gateway_env: dict[str, str] | None = None,
    web: bool = False,
    web_env: dict[str, str] | None = None,
    redis_db: int = REDIS_DB,
) -> AsyncIterator[Stack]:
    """The stack, torn down on exit; ``extra_env`` goes to every process, ``saga_env`` to the
    saga api and worker only (e.g. the orchestrator's retry policy).

    ``gateway`` (on unless turned off) adds ``gateway-api`` in front of the four apis (``stack.url("gateway")``),
    configured by ``gateway_env`` on top of its defaults. ``web`` (off unless turned on; needs
    the gateway) adds ``web-api``, the front end: it calls this stack's gateway, the gateway
    sends it every page path (``stack.gateway_url`` + ``/`` is the home page), and its session
    keys in Redis have a prefix of this stack's own; ``web_env`` configures it on top. Without
    web, the gateway's ``WEB_URL`` names a port nothing of the stack listens on (a page is a
    503), never another copy's front end. ``redis_db`` keeps the fault flags (global keys) of
    one suite away from another's.
    """
    if web and not gateway:
        raise ValueError("web calls the API through the gateway: running_stack(web=True) needs it")
    prefix = f"s{uuid.uuid4().hex[:10]}."
    redis_url = f"{infra.redis_url.rsplit('/', 1)[0]}/{redis_db}"
    databases = {s: await infra.create_database(s) for s in SERVICES}
    ports = {f"{s}-{k}": free_port() for s in SERVICES for k in ("api", "worker")}
    if gateway:
        ports["gateway-api"] = free_port()
        ports["web-api"] = free_port()
    common = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "REDIS_URL": redis_url,
        "FAULT_INJECTION": "true",
        "JWKS_URL": f"http://127.0.0.1:{ports['member-api']}/.well-known/jwks.json",
        "LOG_LEVEL": "INFO",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "SHUTDOWN_TIMEOUT_SECONDS": "10",
        **(extra_env or {}),
    }
    env = {
        s: {
            **common,
            "DATABASE_URL": databases[s],
            "HTTP_PORT": str(ports[f"{s}-api"]),
            "WORKER_PORT": str(ports[f"{s}-worker"]),
        }
        for s in SERVICES
    }
    env["member"].update(
        JWT_PRIVATE_KEY=_jwt_private_key(),
        JWT_KEY_ID=f"saga-tests-{prefix}",
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        REDIS_KEY_PREFIX=f"{prefix}member:",
        # Every client of the stack is 127.0.0.1: no limit per client address (0 disables).
        LOGIN_PER_ADDRESS_PER_MINUTE="0",
        SIGN_UP_PER_ADDRESS_PER_MINUTE="0",
    )
    env["board"]["REDIS_KEY_PREFIX"] = f"{prefix}board:"
    # saga_env wins over the test-friendly intervals (the bench harness runs the defaults).
    env["saga"].update(
        {
            "QNA_URL": f"http://127.0.0.1:{ports['qna-api']}",
            "STEP_TIMEOUT_SECONDS": str(step_timeout),
            "COMPENSATION_RETRY_SECONDS": "0.3",
            "SWEEP_INTERVAL_SECONDS": "0.2",
            "IN_FLIGHT_REFRESH_SECONDS": "0.5",
            **(saga_env or {}),
        }
    )
    if gateway:
        env["gateway"] = {
            **{k: v for k, v in common.items() if k != "JWKS_URL"},
            "SERVICE_NAME": "gateway",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(ports["gateway-api"]),
            **{f"{s.upper()}_URL": f"http://127.0.0.1:{ports[f'{s}-api']}" for s in SERVICES},
            "JWKS_URL": "",  # derived from MEMBER_URL
            "RATE_LIMIT_PER_MINUTE": "0",
            "RATE_LIMIT_KEY_PREFIX": f"{prefix}gateway:ratelimit:",
            "WEB_URL": f"http://127.0.0.1:{ports['web-api']}",
            "UPSTREAM_TIMEOUT_SECONDS": "10",
            **(gateway_env or {}),
        }
    if web:
        env["web"] = {
            **{k: v for k, v in common.items() if k not in ("JWKS_URL", "KAFKA_TOPIC_PREFIX")},
            "SERVICE_NAME": "web",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(ports["web-api"]),
            "GATEWAY_URL": f"http://127.0.0.1:{ports['gateway-api']}",
            "WEB_REDIS_KEY_PREFIX": f"{prefix}web:",
            **(web_env or {}),
        }
    stack = Stack(prefix, redis_url, databases, env, ports)
    try:
        await ensure_topics(
            infra.kafka_bootstrap,
            [f"{prefix}{t}" for t in with_dlqs(list(ALL_TOPICS))],
            partitions=3,
        )
        await asyncio.gather(*(asyncio.to_thread(_migrate, s, env[s]) for s in SERVICES))
        names = [f"{s}-{k}" for s in SERVICES for k in ("api", "worker")]
        names += ["gateway-api"] if gateway else []
        names += ["web-api"] if web else []
        for name in names:
            stack.launch(name)
        for name in names:
            await asyncio.to_thread(stack.processes[name].wait_ready, READY_TIMEOUT)
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)
        for url in databases.values():
            await infra.drop_database(url)


async def _serve_forever() -> None:
    with provide_infra() as infra:
        async with running_stack(infra) as stack:
            for service in SERVICES:
                print(f"{service}: {stack.url(service)}  (worker {stack.worker_url(service)})")
            print(f"gateway: {stack.gateway_url}")
            print(f"admin: {ADMIN_EMAIL} / {ADMIN_PASSWORD}; Ctrl-C stops the stack", flush=True)
            stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stopped.set)
            await stopped.wait()


if __name__ == "__main__":
    asyncio.run(_serve_forever())
