"""Closed-loop HTTP load with wrk: its command line, a Lua ``done()`` that prints JSON, the parser.

wrk (https://github.com/wg/wrk) is a compiled load generator, so the client is not the
bottleneck: ``-t2 -c16 -d8s --latency`` keeps 16 connections busy from two threads. Latency
figures are wrk's own (per request, from send to the last byte), in microseconds in the JSON.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: The marker in front of the JSON line the Lua script writes; wrk's own text output surrounds it.
MARKER = "BENCH_JSON "

#: ``done()`` runs once after the run, in the main thread; ``latency:percentile`` is in µs.
LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    "MARKER", summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
""".replace("MARKER", MARKER)


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput and latency (milliseconds), and its errors by kind."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Completed requests per second (a non-2xx/3xx answer counts, see ``failed``)."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def failed(self) -> int:
        """Socket errors, timeouts and answers with a status of 400 or more."""
        return sum(self.errors.values())


def parse_wrk_output(output: str) -> WrkResult:
    """The figures of a run from wrk's stdout; ``ValueError`` when the JSON line is missing
    (wrk failed before ``done()``, e.g. connection refused on every socket)."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
                mean_ms=data["mean_us"] / 1000,
                errors={k: int(v) for k, v in data["errors"].items()},
            )
    raise ValueError(f"no {MARKER.strip()} line in wrk output:\n{output[-2000:]}")


def wrk_command(
    url: str,
    script: Path,
    *,
    threads: int = 2,
    connections: int = 16,
    seconds: float = 8,
    headers: dict[str, str] | None = None,
) -> list[str]:
    """The argv of one run (``--latency`` for the percentiles, ``--timeout`` well above p99)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    argv += ["--latency", "--timeout", "10s", "-s", str(script)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    return [*argv, url]


class Wrk:
    """Runs wrk with the JSON-printing script (written once to a temporary file)."""

    def __init__(self, *, threads: int = 2, connections: int = 16, seconds: float = 8) -> None:
        self.threads, self.connections, self.seconds = threads, connections, seconds
        handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
        with handle:
            handle.write(LUA_DONE)
        self.script = Path(handle.name)

    async def run(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        seconds: float | None = None,
        connections: int | None = None,
    ) -> WrkResult:
        """One run; ``connections=1`` (one thread) measures latency without queueing."""
        argv = wrk_command(
            url,
            self.script,
            threads=self.threads if connections is None else min(self.threads, connections),
            connections=self.connections if connections is None else connections,
            seconds=self.seconds if seconds is None else seconds,
            headers=headers,
        )
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        stdout, _ = await process.communicate()
        return parse_wrk_output(stdout.decode(errors="replace"))

    def close(self) -> None:
        self.script.unlink(missing_ok=True)
