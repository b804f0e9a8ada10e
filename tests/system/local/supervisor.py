"""Test harness for `make run`'s supervisor (deploy/local/run.py): the whole system started as `make run` starts it, isolated.

A system runs at a port offset of its own (``RUN_PORT_OFFSET``), on fresh databases, its own
Kafka topic prefix, Redis key prefix and Redis database, and its own pid folder, so that it
runs beside ``make run`` and the fault suite. Used by the rolling-restart and observe tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from tests.support.infra import REPO, Infra
from tests.system.saga.stack import _jwt_private_key

#: Every setting run.py passes on to our own processes: computed by run.py from the offset.
OUR_URLS = ("MEMBER_URL", "BOARD_URL", "QNA_URL", "SAGA_URL", "WEB_URL", "GATEWAY_URL", "JWKS_URL")


@dataclass
class System:
    supervisor: subprocess.Popen[bytes]
    pid_dir: Path
    log_path: Path

    def pid(self, name: str) -> int:
        return int((self.pid_dir / f"{name}.pid").read_text())

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def supervisor_env(
    infra: Infra,
    databases: dict[str, str],
    prefix: str,
    *,
    redis_db: int,
    port_offset: int,
    replicas: int,
    pid_dir: Path,
    key_id: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one isolated system: this process's, without the URLs run.py derives
    from the offset, plus ``databases`` (service -> URL), ``prefix`` for topics and Redis keys,
    ``redis_db`` (fault flags and rate-limit counters are global keys), the offset, the number
    of API replicas, the pid folder, a fresh JWT signing key named ``key_id``, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in OUR_URLS and k != "DATABASE_URL"}
    env.update(
        {
            **{f"{s.upper()}_DATABASE_URL": url for s, url in databases.items()},
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            "REDIS_URL": f"{infra.redis_url.rsplit('/', 1)[0]}/{redis_db}",
            "REDIS_KEY_PREFIX": prefix,
            "WEB_REDIS_KEY_PREFIX": f"{prefix}web:",
            "JWT_PRIVATE_KEY": _jwt_private_key(),
            "JWT_KEY_ID": key_id,
            "RUN_PORT_OFFSET": str(port_offset),
            "RUN_API_REPLICAS": str(replicas),
            "RUN_RESTART": "on-failure",
            "RUN_PID_DIR": str(pid_dir),
            "NO_COLOR": "1",
            **(extra or {}),
        }
    )
    return env


async def ready(http: httpx.AsyncClient, port: int) -> bool:
    try:
        response = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def wait_ready(system: System, ports: list[int], timeout: float) -> None:
    """Until every port's ``/readyz`` answers 200; RuntimeError (with the log's tail) when run.py
    exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        waiting = list(ports)
        while waiting:
            if system.supervisor.poll() is not None:
                raise RuntimeError(f"run.py exited:\n{system.log_tail()}")
            waiting = [p for p in waiting if not await ready(http, p)]
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout}s: {waiting}\n{system.log_tail()}")
            if waiting:
                await asyncio.sleep(0.2)


def start_supervisor(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "deploy" / "local" / "run.py")],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def observe_switch(
    env: dict[str, str], state: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``run.py observe on|off`` (what `make observe` / `make observe-down` run after the
    backends), in ``env``; it rolls the processes of a supervisor running with that env."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(REPO / "deploy" / "local" / "run.py"), "observe", state],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop_supervisor(system: System) -> None:
    """run.py's orderly shutdown; then any process group it could not stop."""
    supervisor = system.supervisor
    if supervisor.poll() is None:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
    for pid_file in system.pid_dir.glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
