"""A Zipkin of the test's own (deploy/local/infra.sh on a private directory and port) and a reader of its trace API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.infra import REPO
from tests.support.processes import free_port

INFRA_SH = REPO / "deploy" / "local" / "infra.sh"
#: The first start fetches the 130 MB jar from Maven Central (~20 s here); a start from the
#: cached jar takes ~5 s, more on a loaded machine.
START_TIMEOUT = 400.0


def java_missing() -> str | None:
    """Why Zipkin cannot run here (no Java 17 or newer), or None."""
    if shutil.which("java") is None:
        return "Zipkin needs Java 17 or newer: no java on PATH"
    shown = subprocess.run(
        ["java", "-XshowSettings:properties", "-version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stderr
    found = re.search(r"java\.specification\.version = (\d+)", shown)
    if found is None or int(found.group(1)) < 17:
        return f"Zipkin needs Java 17 or newer: java reports {found.group(1) if found else '?'}"
    return None


@dataclass(frozen=True)
class Zipkin:
    url: str

    @property
    def spans_endpoint(self) -> str:
        """What ``OTEL_EXPORTER_ZIPKIN_ENDPOINT`` names."""
        return f"{self.url}/api/v2/spans"


def _infra(command: str, local_dir: str, port: int) -> None:
    env = {**os.environ, "MSA_LOCAL_DIR": local_dir, "ZIPKIN_PORT": str(port)}
    result = subprocess.run(
        [str(INFRA_SH), command],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"infra.sh {command} failed:\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def running_zipkin() -> Iterator[Zipkin]:
    """Zipkin on a free loopback port, with its pid file and log in a directory of its own, stopped
    (and that directory removed) at the end whatever happens. The jar is the shared cached one."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="zipkin-test-") as local_dir:
        try:
            _infra("zipkin-up", local_dir, port)
            yield Zipkin(f"http://127.0.0.1:{port}")
        finally:
            _infra("zipkin-down", local_dir, port)


Span = dict[str, Any]


async def wait_for_trace(
    http: httpx.AsyncClient,
    zipkin: Zipkin,
    trace_id: str,
    complete: Callable[[list[Span]], bool],
    timeout: float = 60.0,
) -> list[Span]:
    """``GET /api/v2/trace/{trace_id}`` until ``complete(spans)`` holds (spans arrive in batches,
    every ``OTEL_BSP_SCHEDULE_DELAY`` from each process); the last answer when time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    spans: list[Span] = []
    while True:
        response = await http.get(f"{zipkin.url}/api/v2/trace/{trace_id}")
        if response.status_code == 200:
            spans = response.json()
            if complete(spans):
                return spans
        if loop.time() >= deadline:
            return spans
        await asyncio.sleep(0.5)
