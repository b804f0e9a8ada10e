"""``python -m benchmarks.bench``: start the bench stack and the baselines, measure, print the table.

    python -m benchmarks.bench [--only P1,P2,...] [--quick] [--json FILE]

Needs wrk and nginx on PATH (``make bench`` installs them from Debian) and the local
infrastructure (``deploy/local/local.env`` exported). A whole run takes about 5 minutes on an
idle machine (274 s on 2 cores), ``--quick`` less (shorter runs, smaller tables); far longer
on a busy one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.bench import figures as f
from benchmarks.bench import procstat
from benchmarks.bench.report import Figure, as_json, render_header, render_table
from benchmarks.bench.stack import (
    asyncpg_url,
    baseline_app,
    bench_stack,
    drop_stale_databases,
    nginx_proxy,
)
from benchmarks.bench.wrk import Wrk
from tests.support.infra import REPO, Infra, provide_infra

ALL = ("P1", "P2", "P3", "P4", "P5", "P6")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help="figures to measure, e.g. P1,P2")
    parser.add_argument("--quick", action="store_true", help="shorter runs, smaller tables")
    parser.add_argument("--json", type=Path, help="also write the header and rows as JSON here")
    args = parser.parse_args(argv)
    args.only = {p.strip().upper() for p in args.only.split(",") if p.strip()}
    unknown = args.only - set(ALL)
    if unknown or not args.only:
        named = f"unknown figures {sorted(unknown)}" if unknown else "no figure named"
        parser.error(f"{named}; choose from {', '.join(ALL)}")
    return args


def _first_line(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _kafka_version() -> str:
    for pid in procstat.find_pids("kafka.Kafka"):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        for entry in argv:
            for part in entry.split(":"):
                libs = Path(part.rstrip("*"))
                if libs.is_dir():
                    for jar in libs.glob("kafka_2*.jar"):
                        return jar.stem.split("-", 1)[1]
    return "?"


def _commit() -> str:
    """``<hash> <subject>`` of HEAD, marked when tracked files have local changes."""

    def git(*args: str) -> str:
        argv = ["git", "-C", str(REPO), *args]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("log", "-1", "--format=%h %s") + (" (with local changes)" if dirty else "")


async def machine(infra: Infra, sizes: f.Sizes, args: argparse.Namespace) -> dict[str, Any]:
    """What the figures were measured on: the header of the output."""
    conn = await asyncpg.connect(infra.pg_admin_url)
    try:
        pg = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    commit = await asyncio.to_thread(_commit)
    load = os.getloadavg()
    mem_kb = int(_first_line("/proc/meminfo", "MemTotal").split()[0] or 0)
    return {
        "command": "python -m benchmarks.bench " + " ".join(sys.argv[1:]),
        "commit": commit,
        "nproc": os.cpu_count(),
        "cpu": _first_line("/proc/cpuinfo", "model name"),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "loadavg at start": " ".join(f"{x:.2f}" for x in load),
        "python": platform.python_version(),
        "postgresql": pg,
        "kafka": _kafka_version(),
        "wrk": f"-t{2} -c{16} -d{sizes.wrk_seconds:g}s --latency",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


@asynccontextmanager
async def baselines(bench: f.Bench) -> AsyncIterator[None]:
    """hello, minimal (on the stack's board database) and nginx (in front of board-api)."""
    path = f"/api/boards/{bench.board_id}/posts?page=2&size=20"
    async with AsyncExitStack() as stack:
        hello = await stack.enter_async_context(baseline_app("hello", ready_path="/hello"))
        dsn = asyncpg_url(bench.stack.databases["board"])
        minimal = await stack.enter_async_context(baseline_app("minimal", dsn, ready_path=path))
        board_port = bench.stack.ports["board-api"]
        nginx = await stack.enter_async_context(nginx_proxy(board_port, path))
        for name, process in (("hello", hello), ("minimal", minimal)):
            bench.urls[name] = f"http://127.0.0.1:{process.port}"
            bench.pids[name] = [process.proc.pid] if process.proc else []
        bench.urls["nginx"] = f"http://127.0.0.1:{nginx.port}"
        bench.pids["nginx"] = nginx.pids
        yield


async def run(args: argparse.Namespace) -> int:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found on PATH (make bench installs it)", file=sys.stderr)
            return 2
    sizes = f.QUICK if args.quick else f.FULL
    began = time.monotonic()
    rows: list[Figure] = []
    with provide_infra() as infra:
        dropped = await drop_stale_databases(infra)
        if dropped:
            print(f"dropped databases of an earlier, killed run: {', '.join(dropped)}")
        header = await machine(infra, sizes, args)
        cores = os.cpu_count() or 1
        if os.getloadavg()[0] > 0.5 * cores:
            print(
                f"WARNING: load average {os.getloadavg()[0]:.2f} > 0.5 x {cores} cores at the "
                "start: the figures share the CPU with other work; compare CPU per request.",
                flush=True,
            )
        print("starting the bench stack ...", flush=True)
        wrk = Wrk(seconds=sizes.wrk_seconds)
        try:
            async with bench_stack(infra) as stack:
                bench = await f.prepare(infra, stack, sizes, wrk)
                try:
                    print(f"stack ready after {time.monotonic() - began:.0f} s", flush=True)
                    if args.only & {"P1", "P2"}:
                        async with baselines(bench):
                            measured = [r for r in await f.p1_p2(bench) if r.key in args.only]
                        rows += _progress("P1/P2", measured, bench, began)
                    for key, measure in (("P3", f.p3), ("P4", f.p4), ("P5", f.p5), ("P6", f.p6)):
                        if key in args.only:
                            rows += _progress(key, await measure(bench), bench, began)
                finally:
                    await bench.http.aclose()
                # The report comes before the teardown, which may take a while on a busy machine.
                header["duration"] = f"{time.monotonic() - began:.0f} s"
                header["loadavg at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
                report = "\n\n".join(
                    [render_header(header), render_table(rows), "\n".join(bench.details)]
                )
                print(f"\n{report}\n", flush=True)
                if args.json:
                    document = as_json(header, rows)
                    document["details"] = bench.details
                    args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
                print("stopping the bench stack ...", flush=True)
        finally:
            wrk.close()
    return 0


def _progress(what: str, rows: list[Figure], bench: f.Bench, began: float) -> list[Figure]:
    """Print a part's rows and detail lines as soon as it is measured (a run cut short keeps
    what it had)."""
    print(f"{what} measured ({time.monotonic() - began:.0f} s so far)", flush=True)
    print(render_table(rows), flush=True)
    print("\n".join(bench.details[bench.printed :]), flush=True)
    bench.printed = len(bench.details)
    return rows


def main() -> None:
    sys.exit(asyncio.run(run(parse_args())))


if __name__ == "__main__":
    main()
