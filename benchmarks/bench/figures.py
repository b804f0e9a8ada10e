"""The figures P1-P6 of issue 15: each measurement against the running bench stack.

Every function takes the ``Bench`` context (the stack, the baselines, the sizes of this run)
and returns rows for the table (``report.Figure``) plus detail lines printed under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from benchmarks.bench import procstat
from benchmarks.bench.client import Member, UnexpectedStatus, ok, prepare_acceptance, sign_up
from benchmarks.bench.openloop import Outcome, run_open_loop
from benchmarks.bench.report import Figure, Goal, percentile
from benchmarks.bench.stack import READY_TIMEOUT, asyncpg_url, database_name, wait_http
from benchmarks.bench.wrk import Wrk, WrkResult
from tests.support.infra import Infra
from tests.system.saga.stack import Stack

TERMINAL = ("COMPLETED", "COMPENSATED", "FAILED")
WORKERS = ("member-worker", "board-worker", "qna-worker", "saga-worker")
APIS = ("gateway-api", "member-api", "board-api", "qna-api", "saga-api")


@dataclass(frozen=True)
class Sizes:
    """How long and how big each part of a run is (``--quick`` shrinks them)."""

    wrk_seconds: float = 8
    warmup_seconds: float = 2
    seed_posts: int = 300
    p3_rate: float = 200
    p3_seconds: float = 10
    p4_rate: float = 20
    p4_seconds: float = 10
    p4_step_seconds: float = 5
    p4_steps: tuple[float, ...] = (5, 10, 15, 30, 40, 50, 60, 80, 100)
    idle_seconds: float = 30
    p6_rows: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    p6_seconds: float = 5


FULL = Sizes()
QUICK = Sizes(
    wrk_seconds=3,
    warmup_seconds=1,
    p3_seconds=3,
    p4_seconds=4,
    p4_step_seconds=3,
    p4_steps=(5, 10, 15, 30, 50),
    idle_seconds=10,
    p6_rows=(1_000, 10_000, 100_000),
    p6_seconds=2,
)


@dataclass
class Bench:
    """What every figure measures against."""

    infra: Infra
    stack: Stack
    sizes: Sizes
    wrk: Wrk
    member: Member
    board_id: str
    http: httpx.AsyncClient
    urls: dict[str, str] = field(default_factory=dict)  # baselines: hello, minimal, nginx
    pids: dict[str, list[int]] = field(default_factory=dict)  # baselines' processes
    details: list[str] = field(default_factory=list)
    printed: int = 0  # how many of the details have been printed

    def stack_pid(self, name: str) -> int:
        proc = self.stack.processes[name].proc
        assert proc is not None
        return proc.pid

    @property
    def stack_pids(self) -> dict[str, int]:
        return {name: self.stack_pid(name) for name in self.stack.processes}

    async def pg_backends(self) -> list[int]:
        """The PostgreSQL backends serving the stack's databases (their CPU is the stack's)."""
        names = [database_name(url) for url in self.stack.databases.values()]
        conn = await asyncpg.connect(self.infra.pg_admin_url)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1::text[])", names
            )
        finally:
            await conn.close()
        return [r["pid"] for r in rows]


async def prepare(infra: Infra, stack: Stack, sizes: Sizes, wrk: Wrk) -> Bench:
    """A member with a token, and the free board with ``seed_posts`` posts written through the
    gateway (so every projection ran), visible in its read model."""
    # No pool timeout: an open-loop request waits for a connection as long as it must, and
    # that wait is part of its latency (measured from the due time).
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(30, pool=None), limits=httpx.Limits(max_connections=64)
    )
    member = await sign_up(http, stack.gateway_url)
    boards = ok(await http.get(f"{stack.url('board')}/api/boards"))
    board_id = next(b["id"] for b in boards if b["slug"] == "free")
    bench = Bench(infra, stack, sizes, wrk, member, board_id, http)
    gate = asyncio.Semaphore(8)

    async def write(i: int) -> None:
        async with gate:
            for attempt in range(3):  # a loaded machine may time a write out; not measured
                try:
                    await write_post(bench, i)
                    return
                except (UnexpectedStatus, httpx.HTTPError):
                    if attempt == 2:
                        raise

    await asyncio.gather(*(write(i) for i in range(sizes.seed_posts)))
    await wait_read_model(bench, sizes.seed_posts)
    return bench


async def write_post(bench: Bench, i: int) -> str:
    """One post through the gateway; returns its id."""
    created = ok(
        await bench.http.post(
            f"{bench.stack.gateway_url}/api/boards/{bench.board_id}/posts",
            json={"title": f"bench post {i}", "content": "measured " * 20},
            headers=bench.member.headers,
        ),
        201,
    )
    return str(created["id"])


async def wait_read_model(bench: Bench, total: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    url = f"{bench.stack.url('board')}/api/boards/{bench.board_id}/posts?page=2&size=1"
    while time.monotonic() < deadline:
        if ok(await bench.http.get(url))["total"] >= total:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the read model did not reach {total} posts")


# --------------------------------------------------------------------------- P1, P2


@dataclass(frozen=True)
class Measured:
    """A wrk run and the CPU its server processes used, in ms per request."""

    result: WrkResult
    cpu_ms: dict[str, float]

    def cpu_per_request(self, name: str) -> float | None:
        return self.cpu_ms.get(name)


async def measure_wrk(
    bench: Bench,
    url: str,
    processes: dict[str, list[int]],
    *,
    headers: dict[str, str] | None = None,
    seconds: float | None = None,
    connections: int | None = None,
) -> Measured:
    """Warm up, then one measured wrk run; CPU ms per request of each named process group
    (``postgres``: the stack's backends) over the measured run."""
    if bench.sizes.warmup_seconds:
        await bench.wrk.run(
            url, headers=headers, seconds=bench.sizes.warmup_seconds, connections=connections
        )
    groups = {**processes, "postgres": await bench.pg_backends()}
    before = {name: procstat.snapshot(pids) for name, pids in groups.items()}
    result = await bench.wrk.run(url, headers=headers, seconds=seconds, connections=connections)
    cpu = {}
    for name, pids in groups.items():
        used = procstat.used_between(before[name], procstat.snapshot(pids))
        cpu[name] = sum(used.values()) * 1000 / max(1, result.requests)
    if result.failed:
        bench.details.append(f"warning: {url}: {result.errors} errors in {result.requests}")
    return Measured(result, cpu)


def _wrk_line(label: str, m: Measured) -> str:
    r = m.result
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in m.cpu_ms.items())
    return (
        f"{label}: {r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms "
        f"({r.requests} requests, {r.failed} failed); CPU ms/request: {cpu}"
    )


async def p1_p2(bench: Bench) -> list[Figure]:
    """P1 the gateway's tax and nginx beside it; P2 the post list against the minimal app,
    the cached first page against hello-world."""
    stack, board = bench.stack, bench.board_id
    path2 = f"/api/boards/{board}/posts?page=2&size=20"
    path1 = f"/api/boards/{board}/posts?page=1&size=20"
    api = {"board-api": [bench.stack_pid("board-api")]}
    runs: dict[str, Measured] = {}
    runs["direct"] = await measure_wrk(bench, stack.url("board") + path2, api)
    runs["gateway"] = await measure_wrk(
        bench,
        stack.gateway_url + path2,
        {"gateway-api": [bench.stack_pid("gateway-api")], **api},
        headers=bench.member.headers,
    )
    # The latency a hop adds is read at one connection: at 16, on two cores shared by wrk, the
    # gateway, board-api and PostgreSQL, p50 is mostly time spent queueing for a core.
    runs["direct c1"] = await measure_wrk(bench, stack.url("board") + path2, api, connections=1)
    runs["gateway c1"] = await measure_wrk(
        bench,
        stack.gateway_url + path2,
        {"gateway-api": [bench.stack_pid("gateway-api")], **api},
        headers=bench.member.headers,
        connections=1,
    )
    runs["nginx"] = await measure_wrk(
        bench, bench.urls["nginx"] + path2, {"nginx": bench.pids["nginx"], **api}
    )
    runs["minimal"] = await measure_wrk(
        bench, bench.urls["minimal"] + path2, {"minimal": bench.pids["minimal"]}
    )
    runs["cached"] = await measure_wrk(bench, stack.url("board") + path1, api)
    runs["hello"] = await measure_wrk(
        bench, bench.urls["hello"] + "/hello", {"hello": bench.pids["hello"]}
    )
    for label, m in runs.items():
        bench.details.append(_wrk_line(label, m))
    d, g, n = runs["direct"].result, runs["gateway"].result, runs["nginx"].result
    d1, g1 = runs["direct c1"].result, runs["gateway c1"].result
    mi, c, h = runs["minimal"].result, runs["cached"].result, runs["hello"].result
    return [
        Figure(
            "P1",
            "gateway + JWT ÷ direct, post list page 2",
            g.rps,
            "req/s",
            d.rps,
            "direct",
            goal=Goal(">=", 0.7, "ratio"),
        ),
        Figure(
            "P1",
            "p50 added by the gateway, one connection",
            g1.p50_ms - d1.p50_ms,
            "ms",
            goal=Goal("<=", 1.5),
            note=f"p50 {g1.p50_ms:.2f} vs {d1.p50_ms:.2f} ms",
        ),
        Figure(
            "P1",
            "p50 added by the gateway, 16 connections (queueing included)",
            g.p50_ms - d.p50_ms,
            "ms",
            note=f"p50 {g.p50_ms:.2f} vs {d.p50_ms:.2f} ms",
        ),
        Figure("P1", "nginx ÷ direct (reference proxy)", n.rps, "req/s", d.rps, "direct"),
        Figure(
            "P1",
            "gateway CPU per proxied request",
            runs["gateway"].cpu_per_request("gateway-api"),
            "ms",
            runs["nginx"].cpu_per_request("nginx"),
            "nginx",
        ),
        Figure(
            "P2",
            "post list page 2 ÷ minimal app",
            d.rps,
            "req/s",
            mi.rps,
            "minimal",
            goal=Goal(">=", 0.8, "ratio"),
            note=f"p50 {d.p50_ms:.1f} vs {mi.p50_ms:.1f} ms",
        ),
        Figure(
            "P2",
            "CPU per post-list request",
            runs["direct"].cpu_per_request("board-api"),
            "ms",
            runs["minimal"].cpu_per_request("minimal"),
            "minimal",
        ),
        Figure(
            "P2",
            "cached page 1 ÷ hello-world",
            c.rps,
            "req/s",
            h.rps,
            "hello",
            note=f"p50 {c.p50_ms:.1f} vs {h.p50_ms:.1f} ms",
        ),
    ]


# ------------------------------------------------------------------------------- P3


EVENT_AGE = re.compile(r"^(\w*event_age_seconds)_bucket\{(?P<labels>[^}]*)\} (?P<count>\S+)$")


def histogram_buckets(metrics: str) -> dict[float, float]:
    """Cumulative counts per upper bound of an ``*event_age_seconds`` histogram in a Prometheus
    text exposition, summed over its label sets (empty when there is no such metric)."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        match = EVENT_AGE.match(line)
        if match:
            le = re.search(r'le="([^"]+)"', match["labels"])
            if le:
                bound = float(le.group(1))
                buckets[bound] = buckets.get(bound, 0.0) + float(match["count"])
    return buckets


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of what was observed in between."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    total = delta[-1] if delta else 0.0
    if total <= 0:
        return float("nan")
    for bound, count in zip(bounds, delta, strict=True):
        if count >= q * total:
            return bound
    return bounds[-1]


async def _metrics(bench: Bench, process: str) -> str:
    name = process.split("-")[0]
    url = bench.stack.worker_url(name) + "/metrics"
    with contextlib.suppress(httpx.HTTPError):
        return (await bench.http.get(url)).text
    return ""


async def _count_posts(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM posts"))
    finally:
        await conn.close()


async def p3(bench: Bench) -> list[Figure]:
    """Posts written through the gateway at a fixed rate (open loop); the lag from each 201 to
    the post in the read model (``post_summaries``, polled every 10 ms), and the CPU of every
    process of the stack and its PostgreSQL backends per post written."""
    sizes = bench.sizes
    seen: dict[str, float] = {}
    created: dict[str, float] = {}
    stop = asyncio.Event()
    caught_up = asyncio.Event()
    writing = True
    board_db = asyncpg_url(bench.stack.databases["board"])

    async def poll() -> None:
        conn = await asyncpg.connect(board_db)
        try:
            while not stop.is_set():
                pending = [uuid.UUID(i) for i in created if i not in seen]
                if pending:
                    rows = await conn.fetch(
                        "SELECT post_id FROM post_summaries WHERE post_id = ANY($1::uuid[])",
                        pending,
                    )
                    now = time.time()
                    for r in rows:
                        seen[str(r["post_id"])] = now
                elif not writing:
                    caught_up.set()
                await asyncio.sleep(0.01)
        finally:
            await conn.close()

    async def write(i: int) -> str:
        post_id = await write_post(bench, 100_000 + i)
        created[post_id] = time.time()
        return post_id

    kafka = procstat.find_pids("kafka.Kafka")
    pids = [*bench.stack_pids.values(), *await bench.pg_backends()]
    metrics_before = histogram_buckets(await _metrics(bench, "board-worker"))
    posts_before = await _count_posts(board_db)
    before, kafka_before = procstat.snapshot(pids), procstat.snapshot(kafka)
    poller = asyncio.create_task(poll())
    began = time.time()
    outcomes = await run_open_loop(sizes.p3_rate, sizes.p3_seconds, write)
    sent_for = time.time() - began
    writing = False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(caught_up.wait(), 120)
    stop.set()
    await poller
    after_pids = [*bench.stack_pids.values(), *await bench.pg_backends()]
    used = procstat.used_between(before, procstat.snapshot(after_pids))
    kafka_used = sum(procstat.used_between(kafka_before, procstat.snapshot(kafka)).values())
    metrics_after = histogram_buckets(await _metrics(bench, "board-worker"))

    written = [o for o in outcomes if o.ok]
    # The CPU is divided by the posts the system stored, not the 201s the client saw: a write
    # the gateway timed out (504) may still have been committed and projected.
    stored = await _count_posts(board_db) - posts_before
    n = max(1, stored)
    lags = [(seen[i] - created[i]) * 1000 for i in created if i in seen]
    lost = len(created) - len(lags)
    by_process = _cpu_ms_per_unit(bench, used, n)
    total_cpu = sum(by_process.values())
    write_latency = [o.latency * 1000 for o in written]
    bench.details.append(
        f"P3: {len(written)} posts written ({len(outcomes) - len(written)} failed) at "
        f"{sizes.p3_rate:g}/s offered for {sizes.p3_seconds:g} s (the last answer {sent_for:.1f} s after the start); "
        f"write latency from the due time p50 {percentile(write_latency, 50):.0f} ms, "
        f"p99 {percentile(write_latency, 99):.0f} ms; {lost} never seen in the read model; {stored} posts stored"
    )
    bench.details.append(
        "P3 CPU ms per post write: "
        + _by_process_line(by_process)
        + f"; Kafka broker (shared, not summed) {kafka_used * 1000 / n:.1f}"
    )
    figures = [
        Figure("P3", "event → read model lag p50", percentile(lags, 50), "ms"),
        Figure(
            "P3",
            f"event → read model lag p99 at {sizes.p3_rate:g} writes/s",
            percentile(lags, 99) if not lost else float("inf"),
            "ms",
            goal=Goal("<=", 100),
            note=f"{lost} not seen" if lost else "",
        ),
        Figure(
            "P3",
            "post writes completed",
            len(written) / max(sent_for, max((o.done for o in written), default=began) - began),
            "writes/s",
        ),
        Figure("P3", "CPU per post write, all processes", total_cpu, "ms", goal=Goal("<=", 8)),
    ]
    if metrics_after:
        for q in (0.5, 0.99):
            age = histogram_quantile(metrics_before, metrics_after, q) * 1000
            figures.append(
                Figure(
                    "P3", f"event age p{q * 100:g} (board-worker metric, bucket bound)", age, "ms"
                )
            )
    return figures


# ------------------------------------------------------------------------------- P4


@dataclass(frozen=True)
class SagaStep:
    rate: float
    latencies_ms: list[float]
    statuses: dict[str, int]
    failed_starts: int

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)

    @property
    def sustained(self) -> bool:
        """Every saga completed, and p99 ≤ 1 s: the system kept up with the rate."""
        complete = set(self.statuses) == {"COMPLETED"} and not self.failed_starts
        return complete and self.p99 <= 1000


async def _saga_starts(bench: Bench, count: int) -> list[tuple[str, str, dict[str, str]]]:
    """``count`` questions with an answer each, ready to accept (not measured)."""
    http, qna = bench.http, bench.stack.url("qna")
    pairs = max(1, min(10, count // 20))
    askers = [await sign_up(http, bench.stack.url("member")) for _ in range(pairs)]
    answerers = [await sign_up(http, bench.stack.url("member")) for _ in range(pairs)]
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> tuple[str, str, dict[str, str]]:
        async with gate:
            asker = askers[i % pairs]
            question, answer = await prepare_acceptance(http, qna, asker, answerers[i % pairs])
        return "POST", f"/api/questions/{question}/answers/{answer}/accept", asker.headers

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def _cpu_ms_per_unit(bench: Bench, used: dict[int, float], units: int) -> dict[str, float]:
    """CPU ms per unit of work (a post, a saga) by process; PostgreSQL backends as one."""
    names = {pid: name for name, pid in bench.stack_pids.items()}
    by_process: dict[str, float] = {}
    for pid, cpu in used.items():
        label = names.get(pid, "postgres")
        by_process[label] = by_process.get(label, 0.0) + cpu * 1000 / max(1, units)
    return by_process


def _by_process_line(by_process: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(by_process.items(), key=lambda kv: -kv[1]))


async def saga_step(bench: Bench, rate: float, seconds: float) -> SagaStep:
    """Accept answers at ``rate`` per second (open loop, on the saga api); each saga's latency
    runs from its due time to ``ended_at`` as the orchestrator stored it (one clock)."""
    starts = await _saga_starts(bench, round(rate * seconds))
    saga_url = bench.stack.url("saga")

    async def accept(i: int) -> str:
        method, path, headers = starts[i]
        reply = await bench.http.request(method, saga_url + path, headers=headers)
        return str(ok(reply, 202)["saga_id"])

    pids = [*bench.stack_pids.values(), *await bench.pg_backends()]
    cpu_before = procstat.snapshot(pids)
    outcomes: list[Outcome] = await run_open_loop(rate, seconds, accept)
    ids = {str(o.value): o.due for o in outcomes if o.ok}
    ended: dict[str, tuple[str, float]] = {}
    conn = await asyncpg.connect(asyncpg_url(bench.stack.databases["saga"]))
    try:
        deadline = time.monotonic() + max(30.0, seconds * 3)
        while len(ended) < len(ids) and time.monotonic() < deadline:
            rows = await conn.fetch(
                "SELECT id, status, ended_at FROM saga_instances WHERE id = ANY($1::uuid[])"
                " AND ended_at IS NOT NULL",
                [uuid.UUID(i) for i in ids if i not in ended],
            )
            for r in rows:
                ended_at: dt.datetime = r["ended_at"]
                ended[str(r["id"])] = (r["status"], ended_at.timestamp())
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    after_pids = [*bench.stack_pids.values(), *await bench.pg_backends()]
    by_process = _cpu_ms_per_unit(
        bench, procstat.used_between(cpu_before, procstat.snapshot(after_pids)), len(ended)
    )
    statuses: dict[str, int] = {}
    latencies = []
    for saga_id, due in ids.items():
        status, at = ended.get(saga_id, ("UNFINISHED", float("inf")))
        statuses[status] = statuses.get(status, 0) + 1
        latencies.append((at - due) * 1000)
    step = SagaStep(rate, latencies, statuses, len(outcomes) - len(ids))
    bench.details.append(
        f"P4 step {rate:g}/s for {seconds:g} s: p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {step.p99:.0f} ms, {statuses}, {step.failed_starts} refused starts"
        + ("" if step.sustained else " — not sustained")
        + f"; CPU ms per saga {sum(by_process.values()):.1f}: {_by_process_line(by_process)}"
    )
    return step


async def p4(bench: Bench) -> list[Figure]:
    """P4: p99 at the goal's rate, then the rate stepped up until it is no longer sustained."""
    sizes = bench.sizes
    at_goal = await saga_step(bench, sizes.p4_rate, sizes.p4_seconds)
    best = sizes.p4_rate if at_goal.sustained else 0.0
    steps = [r for r in sizes.p4_steps if (r > sizes.p4_rate) == at_goal.sustained]
    for rate in steps:
        if rate <= best:
            continue
        step = await saga_step(bench, rate, sizes.p4_step_seconds)
        if not step.sustained:
            break
        best = rate
    unfinished = at_goal.statuses.get("UNFINISHED", 0)
    return [
        Figure(
            "P4",
            f"answer-acceptance saga p99 at {sizes.p4_rate:g}/s",
            at_goal.p99,
            "ms",
            goal=Goal("<=", 300),
            note=f"p50 {percentile(at_goal.latencies_ms, 50):.0f} ms"
            + (f", {unfinished} of {len(at_goal.latencies_ms)} unfinished" if unfinished else ""),
        ),
        Figure(
            "P4",
            "sustained sagas/s (p99 ≤ 1 s, all completed)",
            best,
            "sagas/s",
            goal=Goal(">=", 50),
            note="below the first step" if best == 0 else "",
        ),
    ]


# ------------------------------------------------------------------------------- P5


@dataclass
class ProcessFootprint:
    name: str
    rss_mb: float | None = None
    idle_cpu_pct: float | None = None
    stop_s: float | None = None
    start_s: float | None = None


async def p5(bench: Bench) -> list[Figure]:
    """Per process: RSS after the load above, idle CPU (% of one core over ``idle_seconds``
    with no traffic), then one at a time SIGTERM → exit and start → ready (``/readyz``)."""
    stack = bench.stack
    await asyncio.sleep(3)  # let the consumers finish what the load left
    rows = {name: ProcessFootprint(name) for name in stack.processes}
    pids = bench.stack_pids
    for name, pid in pids.items():
        rows[name].rss_mb = procstat.rss_mb(pid)
    before = procstat.snapshot(pids.values())
    began = time.monotonic()
    await asyncio.sleep(bench.sizes.idle_seconds)
    used = procstat.used_between(before, procstat.snapshot(pids.values()))
    elapsed = time.monotonic() - began
    for name, pid in pids.items():
        rows[name].idle_cpu_pct = used.get(pid, 0.0) / elapsed * 100
    for name in list(stack.processes):
        process = stack.processes[name]
        t0 = time.monotonic()
        await asyncio.to_thread(process.terminate, 60)
        rows[name].stop_s = time.monotonic() - t0
        t0 = time.monotonic()
        stack.launch(name)
        await wait_http(f"http://127.0.0.1:{stack.ports[name]}/readyz", READY_TIMEOUT)
        rows[name].start_s = time.monotonic() - t0
    bench.details.append("P5 per process: start→ready s | SIGTERM→exit s | RSS MiB | idle CPU %")
    for r in rows.values():
        bench.details.append(
            f"  {r.name:<14} {r.start_s or 0:6.2f} | {r.stop_s or 0:6.2f} | "
            f"{r.rss_mb or 0:6.1f} | {r.idle_cpu_pct or 0:5.2f}"
        )

    def worst(attr: str, among: tuple[str, ...] | None = None) -> tuple[float, str]:
        values = [
            (getattr(r, attr), r.name)
            for r in rows.values()
            if getattr(r, attr) is not None and (among is None or r.name in among)
        ]
        return max(values) if values else (float("nan"), "")

    start, start_by = worst("start_s")
    stop, stop_by = worst("stop_s")
    rss, rss_by = worst("rss_mb")
    idle_w, idle_w_by = worst("idle_cpu_pct", WORKERS)
    idle_a, idle_a_by = worst("idle_cpu_pct", APIS)
    total_idle = sum(r.idle_cpu_pct or 0 for r in rows.values())
    return [
        Figure("P5", "start → ready, slowest", start, "s", goal=Goal("<=", 2), note=start_by),
        Figure("P5", "SIGTERM → exit idle, slowest", stop, "s", goal=Goal("<=", 5), note=stop_by),
        Figure("P5", "RSS after warm-up, largest", rss, "MiB", note=rss_by),
        Figure(
            "P5", "idle CPU, busiest worker", idle_w, "% core", goal=Goal("<=", 0.5), note=idle_w_by
        ),
        Figure("P5", "idle CPU, busiest api", idle_a, "% core", note=idle_a_by),
        Figure("P5", "idle CPU, whole stack", total_idle, "% core"),
    ]


# ------------------------------------------------------------------------------- P6


def _recount(module: str) -> str | None:
    """The SQL that recomputes the list counters, when the service has them."""
    import importlib

    tables = importlib.import_module(module)
    sql = getattr(tables, "RECOUNT_LIST_COUNTS", None)
    return str(sql) if sql is not None else None


def _post_rows(board_id: uuid.UUID, first: int, count: int) -> Any:
    base = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    authors = [uuid.uuid4() for _ in range(100)]
    for i in range(first, first + count):
        at = base + dt.timedelta(seconds=i)
        yield (
            uuid.uuid4(),
            board_id,
            f"seeded post {i}",
            authors[i % 100],
            f"author{i % 100}",
            0,
            0,
            at,
            at,
            1,
            False,
        )


def _question_rows(first: int, count: int) -> Any:
    base = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    authors = [uuid.uuid4() for _ in range(100)]
    for i in range(first, first + count):
        at = base + dt.timedelta(seconds=i)
        yield (
            uuid.uuid4(),
            f"seeded question {i}",
            authors[i % 100],
            f"author{i % 100}",
            False,
            1,
            "OPEN",
            0,
            None,
            False,
            1,
            1,
            at,
            at,
        )


POST_COLUMNS = [
    "post_id",
    "board_id",
    "title",
    "author_id",
    "author_nickname",
    "comment_count",
    "view_count",
    "created_at",
    "updated_at",
    "version",
    "deleted",
]
QUESTION_COLUMNS = [
    "id",
    "title",
    "author_id",
    "author_nickname",
    "author_withdrawn",
    "bounty",
    "status",
    "answer_count",
    "accepted_answer_id",
    "deleted",
    "version",
    "status_version",
    "created_at",
    "updated_at",
]


@dataclass(frozen=True)
class ListTarget:
    service: str
    table: str
    columns: list[str]
    tables_module: str
    rows: Callable[[int, int], Any]
    path: str


async def p6(bench: Bench) -> list[Figure]:
    """Post list and question list (page 2 of 20) at growing read-model sizes, seeded with COPY
    into databases of their own and served by a board api and a qna api started on them."""
    from tests.system.saga.stack import _migrate

    free = uuid.UUID(bench.board_id)
    targets = [
        ListTarget(
            "board",
            "post_summaries",
            POST_COLUMNS,
            "board.adapters.tables",
            lambda first, count: _post_rows(free, first, count),
            f"/api/boards/{free}/posts?page=2&size=20",
        ),
        ListTarget(
            "qna",
            "question_summaries",
            QUESTION_COLUMNS,
            "qna.adapters.tables",
            _question_rows,
            "/api/questions?page=2&size=20",
        ),
    ]
    figures: list[Figure] = []
    for target in targets:
        url = await bench.infra.create_database(f"p6{target.service}")
        env = {**bench.stack.env[target.service], "DATABASE_URL": url}
        try:
            await asyncio.to_thread(_migrate, target.service, env)
            figures += await _scale_one(bench, target, url, env)
        finally:
            await bench.infra.drop_database(url)
    return figures


async def _scale_one(
    bench: Bench, target: ListTarget, url: str, env: dict[str, str]
) -> list[Figure]:
    from tests.support.processes import ServiceProcess, cli, free_port

    port = free_port()
    env = {**env, "HTTP_PORT": str(port)}
    process = ServiceProcess(f"{target.service}-api-p6", cli(target.service, "api"), env, port=port)
    process.start()
    recount = _recount(target.tables_module)
    results: dict[int, WrkResult] = {}
    seeded = 0
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz", READY_TIMEOUT)
        conn = await asyncpg.connect(asyncpg_url(url))
        try:
            for rows in bench.sizes.p6_rows:
                t0 = time.monotonic()
                await conn.copy_records_to_table(
                    target.table,
                    records=target.rows(seeded, rows - seeded),
                    columns=target.columns,
                )
                seeded = rows
                if recount:
                    await conn.execute(recount)
                await conn.execute(f"VACUUM ANALYZE {target.table}")
                seeding = time.monotonic() - t0
                m = await measure_wrk(
                    bench,
                    f"http://127.0.0.1:{port}{target.path}",
                    {target.service: [process.proc.pid] if process.proc else []},
                    seconds=bench.sizes.p6_seconds,
                )
                results[rows] = m.result
                bench.details.append(
                    _wrk_line(f"P6 {target.service} {rows:,} rows (seeded in {seeding:.0f} s)", m)
                )
        finally:
            await conn.close()
    finally:
        process.terminate(timeout=30)
    label = "post list" if target.service == "board" else "question list"
    smallest = bench.sizes.p6_rows[0]
    figures = []
    for rows, r in results.items():
        last = rows == bench.sizes.p6_rows[-1]
        figures.append(
            Figure(
                "P6",
                f"{label} p50 at {rows:,} rows",
                r.p50_ms,
                "ms",
                results[smallest].p50_ms if last else None,
                f"{smallest:,}" if last else "",
                goal=Goal("<=", 1.5, "ratio") if last else None,
                note=f"{r.rps:,.0f} req/s",
            )
        )
    return figures
