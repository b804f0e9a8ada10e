"""Benchmark of saga completion latency: answer-acceptance sagas (and optionally withdrawals) end to end.

Not a test: run it by hand against a running stack on loopback (``make run``, or the saga test
stack: ``uv run python -m tests.system.saga.stack`` prints its URLs)::

    uv run python -m benchmarks.saga_latency [--sagas 200] [--concurrency 1] [--withdrawals 0]
        [--member-url http://127.0.0.1:8001] [--qna-url http://127.0.0.1:8003]
        [--saga-url http://127.0.0.1:8004]

Setup (not measured): a few askers and answerers sign up; each saga gets its own question
(bounty 1) and answer. Then ``--sagas`` acceptances run, at most ``--concurrency`` at a time.
For each saga two latencies are recorded:

- client: from just before ``POST .../accept`` until ``GET /api/sagas/{id}`` first shows
  COMPLETED (polled every ``--poll-ms``; includes the synchronous pre-check and the poll delay);
- orchestrator: ``ended_at - started_at`` as the saga service stored them (three steps, each a
  command and a reply through two outboxes and Kafka).

It prints p50, p90, p99 and max of both, and how the sagas ended.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.bench.client import ok, prepare_acceptance, sign_up
from benchmarks.bench.report import percentile

TERMINAL = ("COMPLETED", "COMPENSATED", "FAILED")


@dataclass
class Results:
    client_ms: list[float] = field(default_factory=list)
    orchestrator_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)


async def run_saga(
    http: httpx.AsyncClient,
    saga_url: str,
    start: tuple[str, str, dict[str, str]],
    poll: float,
    results: Results,
) -> None:
    method, path, headers = start
    began = time.perf_counter()
    started = ok(await http.request(method, f"{saga_url}{path}", headers=headers), 202)
    saga: dict[str, Any] = {}
    while True:
        saga = ok(await http.get(f"{saga_url}/api/sagas/{started['saga_id']}", headers=headers))
        if saga["status"] in TERMINAL:
            break
        await asyncio.sleep(poll)
    results.client_ms.append((time.perf_counter() - began) * 1000)
    ended = dt.datetime.fromisoformat(saga["ended_at"]) - dt.datetime.fromisoformat(
        saga["started_at"]
    )
    results.orchestrator_ms.append(ended.total_seconds() * 1000)
    results.statuses[saga["status"]] = results.statuses.get(saga["status"], 0) + 1


def report(title: str, values: list[float]) -> None:
    print(
        f"  {title:<13} p50 {percentile(values, 50):7.1f} ms   p90 {percentile(values, 90):7.1f} ms"
        f"   p99 {percentile(values, 99):7.1f} ms   max {max(values):7.1f} ms"
        f"   mean {statistics.fmean(values):7.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=args.concurrency * 2 + 10)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        # --- setup (not measured) ---
        pairs = max(1, min(10, args.sagas // 20))
        askers = [await sign_up(http, args.member_url) for _ in range(pairs)]
        answerers = [await sign_up(http, args.member_url) for _ in range(pairs)]
        starts: list[tuple[str, str, dict[str, str]]] = []
        for i in range(args.sagas):
            asker, answerer = askers[i % pairs], answerers[i % pairs]
            question, answer = await prepare_acceptance(http, args.qna_url, asker, answerer)
            starts.append(
                ("POST", f"/api/questions/{question}/answers/{answer}/accept", asker.headers)
            )
        for _ in range(args.withdrawals):
            member = await sign_up(http, args.member_url)
            starts.append(("DELETE", "/api/members/me", member.headers))
        print(
            f"{args.sagas} answer-acceptance + {args.withdrawals} member-withdrawal sagas, "
            f"concurrency {args.concurrency}, poll every {args.poll_ms} ms",
            flush=True,
        )

        # --- measurement ---
        results = Results()
        gate = asyncio.Semaphore(args.concurrency)

        async def one(start: tuple[str, str, dict[str, str]]) -> None:
            async with gate:
                await run_saga(http, args.saga_url, start, args.poll_ms / 1000, results)

        began = time.perf_counter()
        await asyncio.gather(*(one(s) for s in starts))
        elapsed = time.perf_counter() - began

    print(f"  ended:        {results.statuses}")
    print(f"  throughput    {len(starts) / elapsed:.1f} sagas/s over {elapsed:.1f} s")
    report("client", results.client_ms)
    report("orchestrator", results.orchestrator_ms)
    if set(results.statuses) != {"COMPLETED"}:
        sys.exit(1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sagas", type=int, default=200, help="answer-acceptance sagas")
    parser.add_argument("--withdrawals", type=int, default=0, help="member-withdrawal sagas")
    parser.add_argument("--concurrency", type=int, default=1, help="sagas in flight at once")
    parser.add_argument("--poll-ms", type=int, default=10)
    parser.add_argument(
        "--member-url", default=os.environ.get("MEMBER_URL", "http://127.0.0.1:8001")
    )
    parser.add_argument("--qna-url", default=os.environ.get("QNA_URL", "http://127.0.0.1:8003"))
    parser.add_argument("--saga-url", default=os.environ.get("SAGA_URL", "http://127.0.0.1:8004"))
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
