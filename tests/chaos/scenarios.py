"""Fault scenarios: each injects one kind of fault under load, then the invariants are checked.

A scenario is bounded in time and count and stops by itself: it runs the load for a
fixed time, injects its faults at fixed points, and lifts them. The runner then waits,
within a bound, for the system to drain (outboxes published, consumer lag 0, no saga in
flight) and for every invariant to hold, and turns the outcome into one table row.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from tests.chaos import invariants
from tests.chaos.load import Load
from tests.chaos.stack import GATEWAY_URL, STEP_TIMEOUT_SECONDS, ChaosStack, Fault

#: Seconds after a fault is lifted (and the system is ready again) in which a failed request
#: is still put down to the fault.
GRACE = 5.0

ACCEPTANCE_STEPS = (
    ("qna", "reserve-acceptance"),
    ("member", "transfer-points"),
    ("qna", "confirm-acceptance"),
)
WITHDRAWAL_STEPS = (
    ("member", "start-withdrawal"),
    ("board", "anonymize-author"),
    ("qna", "retire-author"),
    ("member", "complete-withdrawal"),
)
#: Steps after the pivot: they cannot be refused, so a failure must be waited out.
RETRIABLE = {("qna", "confirm-acceptance")}


@dataclass(frozen=True)
class Scale:
    """How big each scenario is: ``FULL`` for ``make chaos``, ``SHORT`` inside ``make test``."""

    name: str
    members: int
    concurrency: int
    before: float  # seconds of load before the fault
    after: float  # seconds of load after it is lifted
    pg_restart_down: float
    pg_outage_down: float
    kills: int
    saga_worker_kills: int
    redis_down: float
    sagas_per_fault: int
    converge_timeout: float


FULL = Scale("full", 24, 8, 20, 20, 4, 30, 6, 4, 20, 2, 120)
SHORT = Scale("short", 8, 4, 4, 6, 4, 8, 2, 2, 6, 1, 60)


@dataclass
class Row:
    """One line of the result table."""

    scenario: str
    sent: int = 0
    failed: int = 0
    written: int = 0
    lost: int = 0
    duplicates: int = 0
    dlq: int = 0
    recover: float | None = None
    converge: float | None = None
    violations: list[str] = field(default_factory=list)


@dataclass
class Context:
    stack: ChaosStack
    load: Load
    scale: Scale
    rng: random.Random
    #: (start, end) monotonic windows in which failed requests are expected.
    windows: list[tuple[float, float]] = field(default_factory=list)
    recover: float = 0.0
    extra: list[str] = field(default_factory=list)


async def probe(stack: ChaosStack, load: Load) -> float:
    """Seconds until every process is ready and a write through the gateway succeeds."""
    started = time.monotonic()
    await asyncio.to_thread(stack.wait_ready, None, 180)
    member = load.world.members[0]
    while await load.write_post(member) is None:
        if time.monotonic() - started > 120:
            raise RuntimeError("no write succeeded within 120 s of the fault's end")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def with_load(
    ctx: Context, faults: Callable[[], Awaitable[None]], *, sagas: float = 1.0
) -> None:
    """Run the load while ``faults`` runs (after ``before`` s), and ``after`` s more."""
    stop_after = asyncio.Event()

    async def injector() -> None:
        await asyncio.sleep(ctx.scale.before)
        await faults()
        await asyncio.sleep(ctx.scale.after)
        stop_after.set()

    async def loader() -> None:
        while not stop_after.is_set():
            await ctx.load.run(2.0, ctx.scale.concurrency, sagas=sagas)

    await asyncio.gather(injector(), loader())


async def server_down(ctx: Context, component: str, seconds: float) -> None:
    fault = await asyncio.to_thread(ctx.stack.stop_server, component)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(ctx.stack.start_server, fault)
    ctx.recover = max(ctx.recover, await probe(ctx.stack, ctx.load))
    assert fault.lifted is not None
    ctx.windows.append((fault.started, time.monotonic() + GRACE))


# ---------------------------------------------------------------------- scenarios


async def postgres_restart(ctx: Context) -> None:
    """PostgreSQL stopped (fast shutdown) under write load for a few seconds, then started."""
    await with_load(ctx, lambda: server_down(ctx, "postgres", ctx.scale.pg_restart_down))


async def postgres_outage(ctx: Context) -> None:
    """A long PostgreSQL outage (30 s in the full suite) under write load."""
    await with_load(ctx, lambda: server_down(ctx, "postgres", ctx.scale.pg_outage_down))


async def kafka_restart(ctx: Context) -> None:
    """The Kafka broker restarted (controlled shutdown, then start) under load."""

    async def fault() -> None:
        started = time.monotonic()
        await asyncio.to_thread(_infra_restart, ctx.stack, "kafka")
        ctx.recover = max(ctx.recover, await probe(ctx.stack, ctx.load))
        ctx.windows.append((started, time.monotonic() + GRACE))

    await with_load(ctx, fault)


def _infra_restart(stack: ChaosStack, component: str) -> None:
    fault = stack.stop_server(component)
    stack.start_server(fault)


async def kill_one(ctx: Context, name: str) -> None:
    fault: Fault = ctx.stack.kill(name)
    # The supervisor notices, waits its backoff and starts it again.
    await asyncio.sleep(1.0)
    ready = await asyncio.to_thread(ctx.stack.wait_ready, [name], 180)
    fault.lifted = time.monotonic()
    ctx.recover = max(ctx.recover, fault.lifted - fault.started)
    ctx.windows.append((fault.started, fault.lifted + GRACE))
    del ready


async def process_kills(ctx: Context) -> None:
    """Random API and worker processes SIGKILLed during writes; the supervisor restarts them."""
    names = [f"{s}-{k}" for s in ("member", "board", "qna", "saga") for k in ("api", "worker")]

    async def faults() -> None:
        for _ in range(ctx.scale.kills):
            await kill_one(ctx, ctx.rng.choice(names))
            await asyncio.sleep(ctx.rng.uniform(1.0, 3.0))

    await with_load(ctx, faults)


async def saga_worker_kills(ctx: Context) -> None:
    """The saga worker killed again and again during a stream of acceptances and withdrawals."""

    async def faults() -> None:
        for _ in range(ctx.scale.saga_worker_kills):
            await kill_one(ctx, "saga-worker")
            await asyncio.sleep(ctx.rng.uniform(1.0, 2.5))

    await with_load(ctx, faults, sagas=6.0)


async def redis_stopped(ctx: Context) -> None:
    """Redis stopped under load: rate limits fail open, caches are bypassed, and the gateway
    stays ready. No request may fail, so no window is granted."""

    async def fault() -> None:
        stopped = await asyncio.to_thread(ctx.stack.stop_server, "redis")
        deadline = time.monotonic() + ctx.scale.redis_down
        not_ready = 0
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                try:
                    ready = (await http.get(f"{GATEWAY_URL}/readyz", timeout=2)).status_code
                except httpx.HTTPError:
                    ready = 0
                not_ready += ready != 200
                await asyncio.sleep(0.5)
        await asyncio.to_thread(ctx.stack.start_server, stopped)
        if not_ready:
            ctx.extra.append(f"the gateway was not ready {not_ready} time(s) while Redis was down")
        ctx.recover = max(ctx.recover, await probe(ctx.stack, ctx.load))

    await with_load(ctx, fault)


async def saga_step_faults(ctx: Context) -> None:
    """Each participant command of both sagas, one at a time, delayed past its step timeout,
    then made to fail (a retriable step's failure is turned off after a few seconds)."""
    load = ctx.load
    delay_ms = int(STEP_TIMEOUT_SECONDS * 1000 * 2)
    for mode in ("delay", "fail"):
        for service, command in ACCEPTANCE_STEPS + WITHDRAWAL_STEPS:
            acceptance = (service, command) in ACCEPTANCE_STEPS
            await _seed_saga_candidates(load, ctx.scale.sagas_per_fault, acceptance)
            await load.set_fault(service, command, mode, delay_ms if mode == "delay" else 0)
            sagas = []
            for _ in range(ctx.scale.sagas_per_fault):
                saga_id = await (load.accept() if acceptance else load.withdraw())
                if saga_id is None:
                    ctx.extra.append(f"{service}/{command} {mode}: the saga did not start")
                else:
                    sagas.append(saga_id)
            if mode == "fail" and (service, command) in RETRIABLE:
                await asyncio.sleep(STEP_TIMEOUT_SECONDS * 2)
            elif mode == "delay":
                # Past the step timeout: the saga has to decide without the reply.
                await asyncio.sleep(STEP_TIMEOUT_SECONDS * 1.5)
            await load.set_fault(service, command, "off")
            lifted = time.monotonic()
            ended = await _wait_terminal(load, sagas, timeout=60)
            ctx.recover = max(ctx.recover, time.monotonic() - lifted)
            for saga_id, status in ended.items():
                if mode == "fail" and (service, command) in RETRIABLE and status != "COMPLETED":
                    ctx.extra.append(
                        f"{service}/{command} failed, then healed: saga {saga_id} is {status},"
                        " not COMPLETED"
                    )
                if status not in ("COMPLETED", "COMPENSATED"):
                    ctx.extra.append(f"{service}/{command} {mode}: saga {saga_id} is {status}")


async def _seed_saga_candidates(load: Load, count: int, acceptance: bool) -> None:
    """Enough answered questions (or members) for ``count`` sagas."""
    if acceptance:
        answered = [q for q in load.world.questions if q.answers]
        for _ in range(count - len(answered)):
            asker, answerer = load.rng.sample(load.world.members, 2)
            await load.ask(asker)
            await load.answer(answerer, load.world.questions[-1])
    else:
        while len(load.world.members) < 4 + count + 2:
            member = await load.sign_up()
            assert member is not None
            load.world.members.append(member)
        for member in load.world.members[-count:]:
            await load.write_post(member)


async def _wait_terminal(load: Load, sagas: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        for saga_id in sagas:
            body = await load.saga(saga_id)
            if body is not None:
                status[saga_id] = body["status"]
        if all(status.get(s) in ("COMPLETED", "COMPENSATED", "FAILED") for s in sagas):
            break
        await asyncio.sleep(0.5)
    return status


SCENARIOS: dict[str, Callable[[Context], Awaitable[None]]] = {
    "postgres-restart": postgres_restart,
    "postgres-outage": postgres_outage,
    "kafka-restart": kafka_restart,
    "process-kills": process_kills,
    "saga-worker-kills": saga_worker_kills,
    "saga-step-faults": saga_step_faults,
    "redis-stopped": redis_stopped,
}


# ---------------------------------------------------------------------- the runner


async def run_scenario(
    name: str, stack: ChaosStack, scale: Scale, baseline: int, seed: int = 11
) -> Row:
    """Prepare a world, run one scenario, wait for convergence, check every invariant."""
    rng = random.Random(seed)
    row = Row(name)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as http:
        load = Load(http, rng)
        await load.log_in_admin()
        await load.prepare(scale.members, hot_posts=3)
        async with invariants.databases() as db:
            written_before = await invariants.outbox_written(db)
        dlq_before, _ = await invariants.kafka_counts()
        ctx = Context(stack, load, scale, rng)
        exits_before, kills_before = stack.exits(), stack.kills()
        load_started = len(load.requests)
        await SCENARIOS[name](ctx)
        load_ended = time.monotonic()
        found, seconds = await invariants.converge(
            baseline, scale.converge_timeout, stack.known_violations
        )
        converged_at = time.monotonic()
        async with invariants.databases() as db:
            row.written = await invariants.outbox_written(db) - written_before
        dlq_after, _ = await invariants.kafka_counts()
    requests = load.requests[load_started:]
    row.sent = len(requests)
    failures = [r for r in requests if not r.ok]
    row.failed = len(failures)
    outside = [
        r
        for r in failures
        if not any(
            start <= r.started <= end or start <= r.ended <= end for start, end in ctx.windows
        )
    ]
    # Only what is new since the previous scenario's check counts against this one.
    row.lost = max(0, found.lost - stack.known_lost)
    row.duplicates = max(0, found.duplicates - stack.known_duplicates)
    new_violations = [v for v in found.violations if v not in stack.known_violations]
    stack.known_violations = set(found.violations) - {"did not drain in time"}
    stack.known_lost, stack.known_duplicates = found.lost, found.duplicates
    dead_lettered = dlq_after - dlq_before
    row.dlq = dead_lettered.total()
    row.recover = ctx.recover
    row.converge = (converged_at - load_ended) if seconds is not None else None
    row.violations = new_violations
    if row.dlq:
        topics = ", ".join(f"{t} {n}" for t, n in sorted(dead_lettered.items()))
        row.violations.append(f"{row.dlq} events dead-lettered ({topics})")
    for failure in outside[:10]:
        row.violations.append(
            f"request failed outside the fault window: {failure.op} -> {failure.status}"
            f" {failure.detail}"
        )
    if len(outside) > 10:
        row.violations.append(f"... {len(outside) - 10} more failed requests outside the windows")
    row.violations.extend(ctx.extra)
    row.violations.extend(stack.unexpected_exits(exits_before, kills_before))
    return row


HEADER = (
    "scenario",
    "requests sent",
    "requests failed",
    "events written",
    "events lost",
    "duplicates applied",
    "DLQ'd",
    "time to recover",
    "time to converge",
)


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (also readable as plain text)."""

    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f} s"

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = (r.scenario, r.sent, r.failed, r.written, r.lost, r.duplicates, r.dlq)
        lines.append(
            "| "
            + " | ".join(str(c) for c in cells)
            + f" | {seconds(r.recover)} | {seconds(r.converge)} |"
        )
    return "\n".join(lines)
