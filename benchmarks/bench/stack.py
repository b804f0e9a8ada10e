"""The measured system for the harness: the saga test stack on bench databases, plus the baselines.

The processes are started the way the system tests start them (tests/system/saga/stack.py:
fresh databases, a topic prefix, free ports, the gateway in front) with the settings of a
production deployment wherever isolation does not need another value: the drain delay, the
shutdown bound, the saga's sweeper and gauge intervals, fault injection off. The gateway's
rate limit is raised out of reach (10⁹ a minute), not turned off, so its Redis counter is still
paid on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from benchmarks.bench import procstat
from benchmarks.bench.baselines import nginx_conf
from chassis.settings import BaseServiceSettings
from saga.config import Settings as SagaSettings
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port
from tests.system.saga import stack as saga_stack
from tests.system.saga.stack import Stack, running_stack

#: A Redis database of the harness's own (make run uses 0, the test suites 11-14).
BENCH_REDIS_DB = 15
#: Seconds a process may take to become ready: nine Python processes starting at once on two
#: cores shared with other work have been seen to need more than the system tests' 180 s.
READY_TIMEOUT = 600.0
#: Raised out of reach, not 0: the gateway still counts every request in Redis.
GATEWAY_RATE_LIMIT = "1000000000"


@dataclass(frozen=True)
class BenchInfra(Infra):
    """The shared infrastructure, with every database the harness creates named
    ``bench_<what>_<pid>_<random>`` so a leftover is recognisable (and dropped by the next run)."""

    async def create_database(self, prefix: str = "t") -> str:
        return await super().create_database(f"bench_{prefix}_{os.getpid()}")


def bench_infra(infra: Infra) -> BenchInfra:
    return BenchInfra(**asdict(infra))


async def drop_stale_databases(infra: Infra) -> list[str]:
    """Drop ``bench_*`` databases left by a harness run whose process is gone (a kill -9)."""
    conn = await asyncpg.connect(infra.pg_admin_url)
    try:
        names = [
            r["datname"]
            for r in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname ~ '^bench_[a-z0-9]+_[0-9]+_'"
            )
        ]
        dropped = []
        for name in names:
            pid = int(name.split("_")[2])
            if pid != os.getpid() and not _alive(pid):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                dropped.append(name)
        return dropped
    finally:
        await conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _defaults() -> tuple[dict[str, str], dict[str, str]]:
    """The production defaults the test stack overrides: (every process, the saga's)."""
    chassis = BaseServiceSettings.model_fields
    saga = SagaSettings.model_fields
    common = {
        "SHUTDOWN_DRAIN_SECONDS": str(chassis["SHUTDOWN_DRAIN_SECONDS"].default),
        "SHUTDOWN_TIMEOUT_SECONDS": str(chassis["SHUTDOWN_TIMEOUT_SECONDS"].default),
        "FAULT_INJECTION": "false",
    }
    saga_env = {
        name: str(saga[name].default)
        for name in (
            "COMPENSATION_RETRY_SECONDS",
            "SWEEP_INTERVAL_SECONDS",
            "IN_FLIGHT_REFRESH_SECONDS",
        )
    }
    return common, saga_env


@contextlib.asynccontextmanager
async def bench_stack(infra: Infra) -> AsyncIterator[Stack]:
    """member, board, qna and saga (api + worker each) and the gateway, on bench databases."""
    common, saga_env = _defaults()
    saga_stack.READY_TIMEOUT = max(saga_stack.READY_TIMEOUT, READY_TIMEOUT)
    async with running_stack(
        bench_infra(infra),
        step_timeout=float(SagaSettings.model_fields["STEP_TIMEOUT_SECONDS"].default),
        extra_env=common,
        saga_env=saga_env,
        gateway_env={"RATE_LIMIT_PER_MINUTE": GATEWAY_RATE_LIMIT},
        redis_db=BENCH_REDIS_DB,
    ) as stack:
        yield stack


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def asyncpg_url(url: str) -> str:
    """The asyncpg form of a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def wait_http(url: str, timeout: float, interval: float = 0.05) -> float:
    """Poll ``url`` until it answers 200; returns the seconds it took (TimeoutError after ``timeout``)."""
    began = time.monotonic()
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() - began < timeout:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return time.monotonic() - began
            await asyncio.sleep(interval)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


@contextlib.asynccontextmanager
async def baseline_app(kind: str, *args: str, ready_path: str) -> AsyncIterator[ServiceProcess]:
    """``hello`` or ``minimal`` (benchmarks/bench/baselines.py) in a process of its own."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.bench.baselines", kind, str(port), *args]
    process = ServiceProcess(kind, argv, {}, port=port).start()
    try:
        await wait_http(f"http://127.0.0.1:{port}{ready_path}", timeout=60)
        yield process
    finally:
        process.terminate(timeout=10)


@dataclass
class Nginx:
    port: int
    process: asyncio.subprocess.Process

    @property
    def pids(self) -> list[int]:
        """The master and its worker (the worker does the proxying)."""
        return [self.process.pid, *procstat.children(self.process.pid)]


def _write_conf(prefix: Path, port: int, upstream_port: int) -> Path:
    prefix.chmod(0o755)  # nginx's worker runs as another user when the master is root
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port, upstream_port))
    return conf


@contextlib.asynccontextmanager
async def nginx_proxy(upstream_port: int, ready_path: str) -> AsyncIterator[Nginx]:
    """nginx in front of ``127.0.0.1:upstream_port`` with a generated configuration in a
    temporary prefix (nothing of the system's nginx is read or written)."""
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        port = free_port()
        conf = await asyncio.to_thread(_write_conf, Path(tmp), port, upstream_port)
        process = await asyncio.create_subprocess_exec(
            *("nginx", "-p", tmp, "-c", str(conf), "-g", "daemon off;"),
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_http(f"http://127.0.0.1:{port}{ready_path}", timeout=20)
            yield Nginx(port, process)
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
