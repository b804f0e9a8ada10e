"""Benchmark of the gateway's cost: the same read endpoint direct, through the gateway, and with a token.

Not a test: run it by hand on an otherwise idle machine (Redis must be up, as for ``make run``):

    uv run python -m benchmarks.gateway_bench [--requests 2000] [--concurrency 32]
    uv run python -m benchmarks.gateway_bench --profile /tmp/gateway.prof   # cProfile the gateway

It starts, as real processes on loopback, a tiny upstream that serves ``GET /api/boards`` and a
JWKS (or uses the board service at ``BOARD_URL`` when that answers) and the gateway in front of
it, then measures from this process with ``httpx.AsyncClient``:

1. ``GET /api/boards`` directly against the upstream;
2. the same through the gateway, without a token;
3. the same through the gateway with a bearer token (signed by a key whose JWKS the stub serves,
   so the gateway verifies it and keys the rate limit by user).

It prints throughput and p50/p99 latency for each, and the ratios to the direct measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchmarks.bench.procstat import cpu_times
from benchmarks.bench.report import percentile
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[1]
READ_PATH = "/api/boards"
BOARDS = [
    {"id": str(uuid.uuid4()), "slug": "notice", "name": "Notice", "description": "News."},
    {"id": str(uuid.uuid4()), "slug": "free", "name": "Free", "description": "Anything."},
]


# --- the upstream stub (runs in its own process: ``gateway_bench.py --serve-stub PORT``) ---------


def serve_stub(port: int) -> None:
    """A minimal service: the read endpoint, a JWKS and a readiness probe."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    boards = json.dumps(BOARDS).encode()
    jwks = os.environ["BENCH_JWKS"].encode()

    async def read(_: object) -> Response:
        return Response(boards, media_type="application/json")

    async def keys(_: object) -> Response:
        return Response(jwks, media_type="application/json")

    async def ready(_: object) -> Response:
        return JSONResponse({"status": "ready"})

    app = Starlette(
        routes=[
            Route(READ_PATH, read),
            Route("/.well-known/jwks.json", keys),
            Route("/readyz", ready),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- processes ----------------------------------------------------------------------------------


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        # Our own interpreter and script, never user input.
        return subprocess.Popen(  # noqa: S603
            argv, env={**os.environ, **env}, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def board_service(url: str) -> bool:
    """Is a real board service answering at ``url``?"""
    try:
        return httpx.get(f"{url.rstrip('/')}{READ_PATH}", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# --- tokens -------------------------------------------------------------------------------------


@dataclass
class Signer:
    kid: str
    private_pem: bytes
    jwks: str

    @classmethod
    def generate(cls) -> Signer:
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        kid = f"bench-{uuid.uuid4().hex[:8]}"
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(kid, pem, json.dumps({"keys": [jwk]}))

    def token(self) -> str:
        import jwt

        now = dt.datetime.now(dt.UTC)
        claims = {
            "sub": str(uuid.uuid4()),
            "role": "USER",
            "iss": os.environ.get("JWT_ISSUER", "msa-member"),
            "aud": os.environ.get("JWT_AUDIENCE", "msa"),
            "iat": now,
            "exp": now + dt.timedelta(minutes=15),
        }
        return jwt.encode(claims, self.private_pem, algorithm="EdDSA", headers={"kid": self.kid})


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    #: CPU microseconds per request (user, system) spent by each server process: steadier than
    #: wall-clock figures on a busy machine.
    cpu_us: dict[str, tuple[float, float]]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """The ``p`` quantile (0-1) of the latencies, in milliseconds."""
        return percentile(self.latencies, p * 100) * 1000


Get = Callable[[], Awaitable[tuple[int, bytes]]]


@asynccontextmanager
async def http_client(
    kind: str, url: str, headers: dict[str, str], concurrency: int
) -> AsyncIterator[Get]:
    """``GET url`` with one of two clients: httpx, or the gateway's own connection pool, which
    needs a twentieth of the CPU and so leaves the shared cores to the servers under test."""
    if kind == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:

            async def get_httpx() -> tuple[int, bytes]:
                response = await client.get(url)
                return response.status_code, response.content

            yield get_httpx
        return
    from gateway.pool import ConnectionPool

    parts = urlsplit(url)
    pool = ConnectionPool(
        f"{parts.scheme}://{parts.netloc}",
        max_connections=concurrency,
        connect_timeout=5,
        max_response_bytes=16 * 1024 * 1024,
    )
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def get_pool() -> tuple[int, bytes]:
        reply = await pool.request("GET", target, raw_headers, b"")
        return reply.status, reply.body

    try:
        yield get_pool
    finally:
        await pool.aclose()


async def measure(
    name: str,
    url: str,
    headers: dict[str, str],
    servers: dict[str, int],
    args: argparse.Namespace,
) -> Result:
    requests, concurrency, warmup = args.requests, args.concurrency, args.warmup
    async with http_client(args.client, url, headers, concurrency) as get:

        async def worker(count: int, sink: list[float] | None) -> None:
            for _ in range(count):
                started = time.perf_counter()
                status, body = await get()
                elapsed = time.perf_counter() - started
                if status != 200:
                    raise SystemExit(f"{name}: {status} {body[:300]!r}")
                if sink is not None:
                    sink.append(elapsed)

        def split(total: int) -> list[int]:
            return [
                total // concurrency + (1 if i < total % concurrency else 0)
                for i in range(concurrency)
            ]

        await asyncio.gather(*(worker(n, None) for n in split(warmup)))
        latencies: list[float] = []
        cpu_before = {server: cpu_times(pid) for server, pid in servers.items()}
        client_before = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(n, latencies) for n in split(requests)))
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        cpu_us: dict[str, tuple[float, float]] = {"client": (client_cpu / requests * 1e6, 0.0)}
        for server, pid in servers.items():
            before, after = cpu_before[server], cpu_times(pid)
            if before is not None and after is not None:
                cpu_us[server] = (
                    (after[0] - before[0]) / requests * 1e6,
                    (after[1] - before[1]) / requests * 1e6,
                )
    return Result(name, requests, seconds, latencies, cpu_us)


def report(results: list[Result]) -> None:
    direct = results[0]
    print(
        f"\n{'scenario':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}   ratio to direct (req/s, p50, p99)"
    )
    for r in results:
        print(
            f"{r.name:<28}{r.throughput:>9.0f}{r.percentile(0.5):>9.2f}{r.percentile(0.99):>9.2f}"
            f"   {r.throughput / direct.throughput:.2f}x, {r.percentile(0.5) / direct.percentile(0.5):.2f}x,"
            f" {r.percentile(0.99) / direct.percentile(0.99):.2f}x"
        )
    print("\nCPU time per request in microseconds, user + system, by server process:")
    for r in results:
        print(
            f"  {r.name:<26}"
            + ", ".join(f"{k} {u:.0f} + {s:.0f}" for k, (u, s) in r.cpu_us.items())
        )
    mean_ms = {r.name: statistics.fmean(r.latencies) * 1000 for r in results}
    print(
        "\nmean latency added by the gateway: "
        + ", ".join(
            f"{name} +{ms - mean_ms[direct.name]:.2f} ms"
            for name, ms in mean_ms.items()
            if name != direct.name
        )
    )


def lighten_client() -> None:
    """httpcore imports the optional ``sniffio`` on every request, and a failed import is not
    cached: without sniffio installed that costs the measuring client more CPU than the request
    (encode/httpcore#1103), CPU the servers under test then lack. Recording the absence makes
    the import fail at once."""
    if importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def run(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """The client runs on uvloop when it is there, so it takes less of the shared CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--client",
        choices=["httpx", "pool"],
        default="httpx",
        help="load generator: httpx.AsyncClient, or the gateway's own upstream client (pool.py)",
    )
    parser.add_argument(
        "--profile", metavar="PATH", help="run the gateway under cProfile, dump here"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra gateway setting, e.g. --env OTEL_SDK_DISABLED=true (to price one concern)",
    )
    parser.add_argument("--serve-stub", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        serve_stub(args.serve_stub)
        return

    lighten_client()
    signer = Signer.generate()
    logs = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    stub_port, gateway_port = free_port(), free_port()
    stub_url = f"http://127.0.0.1:{stub_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        stub = start(
            [sys.executable, "-m", "benchmarks.gateway_bench", "--serve-stub", str(stub_port)],
            {"BENCH_JWKS": signer.jwks},
            logs / "stub.log",
        )
        processes.append(stub)
        wait_ready(f"{stub_url}/readyz", stub, logs / "stub.log")
        board_url = os.environ.get("BOARD_URL", "")
        if not (board_url and board_service(board_url)):
            board_url = stub_url
        print(f"read endpoint: {board_url}{READ_PATH}")

        gateway_argv = [sys.executable, "-m", "gateway.cli", "api"]
        if args.profile:
            gateway_argv = [sys.executable, "-m", "cProfile", "-o", args.profile, *gateway_argv[1:]]
        gateway = start(
            gateway_argv,
            {
                "HTTP_PORT": str(gateway_port),
                "MEMBER_URL": stub_url,
                "BOARD_URL": board_url,
                "QNA_URL": stub_url,
                "SAGA_URL": stub_url,
                "JWKS_URL": f"{stub_url}/.well-known/jwks.json",
                "RATE_LIMIT_PER_MINUTE": str(10**9),
                "RATE_LIMIT_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:",
                "SHUTDOWN_DRAIN_SECONDS": "0",
                **dict(item.split("=", 1) for item in args.env),
            },
            logs / "gateway.log",
        )
        processes.append(gateway)
        wait_ready(f"{gateway_url}/readyz", gateway, logs / "gateway.log")

        token = {"Authorization": f"Bearer {signer.token()}"}
        upstream_pids = {"upstream": stub.pid} if board_url == stub_url else {}
        both = {"gateway": gateway.pid, **upstream_pids}
        scenarios = [
            ("direct", f"{board_url}{READ_PATH}", {}, upstream_pids),
            ("gateway, no token", f"{gateway_url}{READ_PATH}", {}, both),
            ("gateway, with token", f"{gateway_url}{READ_PATH}", token, both),
        ]
        print(
            f"{args.requests} requests per scenario, concurrency {args.concurrency}, "
            f"{args.warmup} warm-up requests, {args.client} client, {os.cpu_count()} CPUs"
        )
        results = [
            run(measure(name, url, headers, servers, args))
            for name, url, headers, servers in scenarios
        ]
        report(results)
    finally:
        for proc in reversed(processes):
            stop(proc)
    if args.profile:
        print(f"\ngateway profile ({args.profile}), top functions by own time:")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
