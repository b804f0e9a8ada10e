"""Walkthrough roll-deployment: every API process restarted one at a time under traffic with no failed request (graceful shutdown, readiness, two replicas behind the gateway)."""

from __future__ import annotations

import asyncio
import time

import httpx

from tools.chaos.load import Load
from tools.chaos.stack import SERVICES, Processes
from tools.walkthrough.common import failed
from tools.walkthrough.guide import Guide

NAME = "roll-deployment"
SUMMARY = (
    "A rolling deployment replaces the processes of a service one at a time while the others "
    "keep serving. We send steady traffic through the gateway (reads of every service and "
    "writes), and for each service's two API replicas in turn send SIGTERM to one, as "
    "Kubernetes does to the pod it replaces, and wait until the supervisor's new process is "
    "ready before touching the next. SIGTERM starts a graceful shutdown: readiness turns 503, "
    "requests in flight finish, and the gateway sends new ones to the other replica. No "
    "request may fail."
)


async def run(guide: Guide, load: Load) -> None:
    processes = guide.target.processes
    apis = [f"{service}-api" for service in SERVICES]
    replicas = {api: processes.replicas(api) for api in apis}
    single = [api for api, names in replicas.items() if len(names) < 2]
    if single:
        guide.fail(
            f"only one replica of {', '.join(single)} (no {single[0]}-2.pid under"
            f" {processes.pid_dir}): restarting it would refuse requests. Start `make run` with"
            " two replicas of each API (RUN_API_REPLICAS=2, local.env's default)."
        )
        return
    await load.prepare(5, hot_posts=1)
    sagas_from = len(load.world.sagas)
    # One saga to read during the roll (saga's API is restarted too).
    question = load.world.questions[0]
    await load.answer(next(m for m in load.world.members if m is not question.asker), question)
    await load.accept()
    saga_ids = load.world.sagas[sagas_from:]
    guide.say("Traffic starts: four clients, each request through the gateway.")
    sent_from = len(load.requests)
    stop = asyncio.Event()
    traffic = asyncio.create_task(steady(load, stop, saga_ids))
    restarted: list[str] = []
    try:
        await asyncio.sleep(1.0)
        for api in apis:
            for name in replicas[api]:
                guide.say(f"SIGTERM {name}; the other replica of {api} carries the traffic.")
                old = await asyncio.to_thread(processes.terminate, name)
                guide.do(f"SIGTERM {name} (pid {old}) at {processes.url(name)}")
                seen = await asyncio.to_thread(readiness_after_sigterm, processes, name)
                guide.do(f"{name} GET /readyz after the SIGTERM: {' -> '.join(seen)}")
                try:
                    took = await asyncio.to_thread(processes.wait_replaced, name, old, 90)
                except TimeoutError as exc:
                    guide.fail(f"{exc}: does `make run` restart a process stopped from outside?")
                    return
                restarted.append(name)
                guide.do(f"{name} back and ready after {took:.1f} s")
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await traffic
    sent = load.requests[sent_from:]
    guide.logs("run.py", "-api(-2)? (exited|restarted)", "the supervisor replacing each process")
    guide.logs("gateway", "upstream", "the gateway moving to the other replica")
    guide.logs(
        apis[0],
        "shutdown.step",
        f"the graceful shutdown of {apis[0]}, step by step (readiness 503, drain, exit 0)",
        limit=6,
    )
    guide.metric(
        "gateway",
        "gateway_upstream_errors_total",
        "upstream attempts that failed and were tried on another replica",
    )
    bad = failed(load, sent_from)
    guide.check(
        not bad,
        f"all {len(sent)} requests during the roll succeeded"
        + (f" ({len(bad)} failed: {bad[:3]})" if bad else ""),
    )
    guide.check(
        len(restarted) == sum(len(names) for names in replicas.values()),
        f"every API replica restarted ({len(restarted)})",
    )


async def steady(load: Load, stop: asyncio.Event, saga_ids: list[str]) -> None:
    """Reads of every service and post writes, from four clients, until ``stop`` is set."""
    member = load.world.members[0]

    async def reads() -> None:
        while not stop.is_set():
            await load.call("boards", "GET", "/api/boards", 200)
            await load.call("questions", "GET", "/api/questions", 200)
            await load.call("me", "GET", "/api/members/me", 200, member)
            for saga_id in saga_ids:
                await load.saga(saga_id)
            await asyncio.sleep(0.02)

    async def writes() -> None:
        while not stop.is_set():
            started = time.monotonic()
            await load.write_post(member)
            await asyncio.sleep(max(0.0, 0.2 - (time.monotonic() - started)))

    await asyncio.gather(reads(), reads(), reads(), writes())


def readiness_after_sigterm(processes: Processes, name: str, seconds: float = 3.0) -> list[str]:
    """The answers of ``name``'s ``GET /readyz`` just after its SIGTERM, each change once:
    ``200`` (not yet signalled), ``503`` (draining: SHUTDOWN_DRAIN_SECONDS, 1.5 s in
    local.env), ``no answer`` (the listener closed). Read every 0.1 s for up to ``seconds``."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            answer = str(httpx.get(f"{processes.url(name)}/readyz", timeout=1).status_code)
        except httpx.HTTPError:
            answer = "no answer"
        if not seen or seen[-1] != answer:
            seen.append(answer)
        if answer == "no answer":
            break
        time.sleep(0.1)
    return seen
