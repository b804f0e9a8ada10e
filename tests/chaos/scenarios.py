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
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.chaos import invariants
from tests.chaos.stack import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    GATEWAY_URL,
    STEP_TIMEOUT_SECONDS,
    ChaosStack,
    Fault,
)
from tools.chaos.load import Load, Request
from tools.chaos.sagas import (
    ACCEPTANCE_STEPS,
    TERMINAL,
    WITHDRAWAL_STEPS,
    fault_reached,
    poll,
    step_fault_outcome,
    step_of,
)

#: Seconds after a fault is lifted (and the system is ready again) in which a failed request
#: is still put down to the fault.
GRACE = 5.0

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


#: The processes that degrade around Redis instead of failing readiness (docs/CONVENTIONS.md
#: "Degraded dependencies"). member's worker is not among them: the withdrawal pivot waits Redis out.
DEGRADED_AROUND_REDIS = (
    "gateway",
    "web",
    "member-api",
    "board-api",
    "qna-api",
    "saga-api",
    "board-worker",
)


async def redis_stopped(ctx: Context) -> None:
    """Redis stopped under load: rate limits count per replica, caches are bypassed, and the
    gateway, every api and board's worker stay ready (each polled every 0.5 s). No request may
    fail, so no window is granted."""

    async def fault() -> None:
        stopped = await asyncio.to_thread(ctx.stack.stop_server, "redis")
        deadline = time.monotonic() + ctx.scale.redis_down
        not_ready: Counter[str] = Counter()
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                for name in DEGRADED_AROUND_REDIS:
                    url = f"{ctx.stack.target.processes.url(name)}/readyz"
                    try:
                        ready = (await http.get(url, timeout=2)).status_code
                    except httpx.HTTPError:
                        ready = 0
                    not_ready[name] += ready != 200
                await asyncio.sleep(0.5)
        await asyncio.to_thread(ctx.stack.start_server, stopped)
        for name, times in sorted(not_ready.items()):
            if times:
                ctx.extra.append(f"{name} was not ready {times} time(s) while Redis was down")
        ctx.recover = max(ctx.recover, await probe(ctx.stack, ctx.load))

    await with_load(ctx, fault)


#: A delayed participant command outlasts its step timeout twice over.
DELAY_MS = int(STEP_TIMEOUT_SECONDS * 1000 * 2)


@dataclass(frozen=True)
class CompensationFault:
    """A compensation faulted while a refused later step makes its saga compensate.

    ``mode`` ``delay``: the compensation outlasts its step timeout, so it is re-sent as it was
    (silence is not a refusal) and the saga still ends COMPENSATED; ``fail``: it is refused
    once, then tried again with a new attempt and applied.
    """

    acceptance: bool
    refused: tuple[str, str]  # (service, command) made to fail, so that the saga compensates
    compensation: tuple[str, str]  # (service, command) of the faulted compensation
    step: str  # the step that compensation undoes
    mode: str


COMPENSATION_FAULTS = (
    CompensationFault(
        True,
        ("member", "transfer-points"),
        ("qna", "cancel-acceptance"),
        "reserve-acceptance",
        "delay",
    ),
    CompensationFault(
        True,
        ("member", "transfer-points"),
        ("qna", "cancel-acceptance"),
        "reserve-acceptance",
        "fail",
    ),
    CompensationFault(
        False, ("qna", "retire-author"), ("board", "restore-author"), "anonymize-author", "delay"
    ),
    CompensationFault(
        False,
        ("board", "anonymize-author"),
        ("member", "cancel-withdrawal"),
        "start-withdrawal",
        "fail",
    ),
)


def compensation_fault_outcome(
    body: Mapping[str, Any], fault: CompensationFault, new_attempt: bool
) -> list[str]:
    """What is wrong with a terminal saga whose compensation of ``fault.step`` was faulted:
    it must be COMPENSATED (never FAILED), the refused step FAILED, ``fault.step``
    COMPENSATED; a delayed compensation re-sent (``retries >= 1``), a refused one tried again
    with a new attempt (``new_attempt``, read from the saga's row)."""
    refused = fault.refused[1]
    problems: list[str] = []
    if body["status"] != "COMPENSATED":
        problems.append(f"is {body['status']}, not COMPENSATED ({body.get('failure_reason')})")
    if step_of(body, refused)["status"] != "FAILED":
        problems.append(f"{refused} is {step_of(body, refused)['status']}, not FAILED")
    undone = step_of(body, fault.step)
    if undone["status"] != "COMPENSATED":
        problems.append(f"{fault.step} is {undone['status']}, not COMPENSATED")
    if fault.mode == "delay" and int(undone["retries"]) < 1:
        problems.append(f"the compensation of {fault.step} was not re-sent (retries 0)")
    if fault.mode == "fail" and not new_attempt:
        problems.append(f"the compensation of {fault.step} was never tried with a new attempt")
    return problems


async def saga_step_faults(ctx: Context) -> None:
    """Each participant command of both sagas, one at a time, delayed past its step timeout,
    then made to fail; then compensations delayed past their timeout and refused once. Each
    fault is lifted only once the saga shows it did its work, and each outcome is checked
    against the rules of the step's kind."""
    for mode in ("delay", "fail"):
        for service, command in ACCEPTANCE_STEPS + WITHDRAWAL_STEPS:
            await _step_fault(ctx, service, command, mode)
    for fault in COMPENSATION_FAULTS:
        await _compensation_fault(ctx, fault)


async def _step_fault(ctx: Context, service: str, command: str, mode: str) -> None:
    load, label = ctx.load, f"{service}/{command} {mode}"
    acceptance = (service, command) in ACCEPTANCE_STEPS
    await load.set_fault(service, command, mode, DELAY_MS if mode == "delay" else 0)
    try:
        sagas = await _start_sagas(ctx, acceptance, label)
        _, waiting = await poll(load, sagas, lambda b: fault_reached(b, command, mode), 60)
        for saga_id in waiting:
            ctx.extra.append(f"{label}: saga {saga_id} never showed the fault's effect")
        if mode == "fail" and (service, command) in RETRIABLE:
            # Refused for a while (a few attempts), then it heals: the saga must complete.
            await asyncio.sleep(STEP_TIMEOUT_SECONDS)
    finally:
        await load.set_fault(service, command, "off")
    lifted = time.monotonic()
    ended, waiting = await poll(load, sagas, lambda b: b["status"] in TERMINAL, 90)
    ctx.recover = max(ctx.recover, time.monotonic() - lifted)
    for saga_id in waiting:
        ctx.extra.append(f"{label}: saga {saga_id} not terminal (or unreadable) after 90 s")
    for saga_id, body in ended.items():
        if saga_id not in waiting:
            ctx.extra.extend(
                f"{label}: saga {saga_id} {p}" for p in step_fault_outcome(body, command, mode)
            )


async def _compensation_fault(ctx: Context, fault: CompensationFault) -> None:
    load = ctx.load
    label = f"{'/'.join(fault.compensation)} {fault.mode} (after {'/'.join(fault.refused)} failed)"
    c_service, c_command = fault.compensation
    await load.set_fault(*fault.refused, "fail")
    await load.set_fault(c_service, c_command, fault.mode, DELAY_MS if fault.mode == "delay" else 0)
    new_attempt: set[str] = set()
    try:
        sagas = await _start_sagas(ctx, fault.acceptance, label)
        if fault.mode == "delay":
            _, waiting = await poll(
                load,
                sagas,
                lambda b: b["status"] in TERMINAL or int(step_of(b, fault.step)["retries"]) >= 1,
                60,
            )
        else:
            # A refused compensation is not visible in the API until it is retried: read the
            # saga's row, and lift the fault as soon as the next attempt is scheduled, so that
            # it is refused exactly once.
            new_attempt = await _wait_compensation_attempt(sagas, fault.step, 2, 60)
            waiting = [s for s in sagas if s not in new_attempt]
        for saga_id in waiting:
            ctx.extra.append(f"{label}: saga {saga_id} never showed the fault's effect")
    finally:
        await load.set_fault(c_service, c_command, "off")
        await load.set_fault(*fault.refused, "off")
    lifted = time.monotonic()
    ended, waiting = await poll(load, sagas, lambda b: b["status"] in TERMINAL, 90)
    ctx.recover = max(ctx.recover, time.monotonic() - lifted)
    for saga_id in waiting:
        ctx.extra.append(f"{label}: saga {saga_id} not terminal (or unreadable) after 90 s")
    for saga_id, body in ended.items():
        if saga_id not in waiting:
            problems = compensation_fault_outcome(body, fault, saga_id in new_attempt)
            ctx.extra.extend(f"{label}: saga {saga_id} {p}" for p in problems)


async def _start_sagas(ctx: Context, acceptance: bool, label: str) -> list[str]:
    """Start ``sagas_per_fault`` sagas of one type; one that does not start is a violation."""
    load = ctx.load
    await _seed_saga_candidates(load, ctx.scale.sagas_per_fault, acceptance)
    sagas = []
    for _ in range(ctx.scale.sagas_per_fault):
        saga_id = await (load.accept() if acceptance else load.withdraw())
        if saga_id is None:
            ctx.extra.append(f"{label}: the saga did not start")
        else:
            sagas.append(saga_id)
    return sagas


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


async def _wait_compensation_attempt(
    sagas: list[str], step: str, attempt: int, timeout: float
) -> set[str]:
    """The sagas whose compensation of ``step`` reached ``attempt`` (a refused compensation is
    retried with a new attempt) within ``timeout`` seconds, read from the saga database."""
    deadline = time.monotonic() + timeout
    reached: set[str] = set()
    async with invariants.databases() as db:
        while len(reached) < len(sagas) and time.monotonic() < deadline:
            rows = await db["saga"].fetch(
                "SELECT id::text AS id, status, current_step, awaiting_compensation,"
                " awaiting_attempt FROM saga_instances WHERE id::text = ANY($1)",
                sagas,
            )
            for row in rows:
                if (
                    row["current_step"] == step
                    and row["awaiting_compensation"]
                    and (row["awaiting_attempt"] or 0) >= attempt
                ):
                    reached.add(row["id"])
            # A saga that ended without getting there never will.
            if len(rows) == len(sagas) and all(
                r["id"] in reached or r["status"] in TERMINAL for r in rows
            ):
                break
            await asyncio.sleep(0.1)
    return reached


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

#: Every write the load sends (``Request.op``); each must succeed at least once in a scenario
#: that runs the load, so that no invariant holds only because nothing was written.
WRITE_KINDS = (
    "sign-up",
    "post",
    "delete-post",
    "comment",
    "delete-comment",
    "question",
    "delete-question",
    "answer",
    "delete-answer",
    "accept",
    "withdraw",
)


def minimums(name: str, scale: Scale) -> dict[str, int]:
    """The fewest successful writes of each kind the scenario ``name`` must have sent."""
    if name == "saga-step-faults":
        per_fault = scale.sagas_per_fault
        acceptance_faults = 2 * len(ACCEPTANCE_STEPS) + sum(
            f.acceptance for f in COMPENSATION_FAULTS
        )
        withdrawal_faults = 2 * len(WITHDRAWAL_STEPS) + sum(
            not f.acceptance for f in COMPENSATION_FAULTS
        )
        return {"accept": per_fault * acceptance_faults, "withdraw": per_fault * withdrawal_faults}
    wanted = dict.fromkeys(WRITE_KINDS, 1)
    if name == "saga-worker-kills":
        # Sagas in flight at every kill, of both types.
        wanted["accept"] = 2 * scale.saga_worker_kills
        wanted["withdraw"] = scale.saga_worker_kills
    return wanted


def too_few(requests: list[Request], wanted: dict[str, int]) -> list[str]:
    """A violation for each write kind with fewer successes (2xx) than ``wanted``."""
    done = Counter(
        r.op for r in requests if r.ok and r.status is not None and 200 <= r.status < 300
    )
    return [
        f"only {done[op]} successful {op} request(s), at least {n} needed for the checks to bite"
        for op, n in wanted.items()
        if done[op] < n
    ]


async def run_scenario(
    name: str, stack: ChaosStack, scale: Scale, baseline: int, seed: int = 11
) -> Row:
    """Prepare a world, run one scenario, wait for convergence, check every invariant."""
    rng = random.Random(seed)
    row = Row(name)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as http:
        load = Load(http, rng, GATEWAY_URL, ADMIN_EMAIL, ADMIN_PASSWORD)
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
        gone = invariants.Deleted(
            frozenset(load.world.deleted_posts),
            frozenset(load.world.deleted_questions),
            frozenset(load.world.deleted_answers),
        )
        found, seconds = await invariants.converge(
            baseline, scale.converge_timeout, stack.known_violations, gone=gone
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
    # Only violations new since the previous scenario's check count against this one, with
    # the events each stands for; one reported earlier and still there is not counted again.
    row.lost, row.duplicates = found.new_counts(stack.known_violations)
    new_violations = [v for v in found.violations if v not in stack.known_violations]
    stack.known_violations = set(found.violations) - {"did not drain in time"}
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
    row.violations.extend(too_few(requests, minimums(name, scale)))
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


def write_results(rows: list[Row], directory: Path, *, short: bool) -> tuple[Path, Path]:
    """Write the table and every violation (one ``scenario: violation`` a line) under
    ``directory``: ``results.md`` and ``violations.txt`` for the full suite,
    ``results-short.md`` and ``violations-short.txt`` for the short one, so that a short run
    never overwrites the full suite's record. Returns the two paths."""
    suffix = "-short" if short else ""
    results = directory / f"results{suffix}.md"
    violations = directory / f"violations{suffix}.txt"
    directory.mkdir(parents=True, exist_ok=True)
    results.write_text(table(rows) + "\n", encoding="utf-8")
    violations.write_text(
        "".join(f"{r.scenario}: {v}\n" for r in rows for v in r.violations), encoding="utf-8"
    )
    return results, violations
