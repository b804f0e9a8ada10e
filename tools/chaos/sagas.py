"""Saga observation for faults: polling ``GET /api/sagas/{id}`` and the rules a faulted saga must end by (pivot, compensatable and retriable steps).

The rules are docs/sagas.md's: a refused compensatable step or pivot makes the saga
compensate every earlier compensatable step; silence (a step timeout) at or after the pivot
never does: the command is sent again until it is answered, and the saga completes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from tools.chaos.load import Load

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
#: Saga statuses that need nothing more from the orchestrator (FAILED waits for an operator).
TERMINAL = ("COMPLETED", "COMPENSATED", "FAILED")


def step_of(body: Mapping[str, Any], step: str) -> Mapping[str, Any]:
    """The step named ``step`` of a ``GET /api/sagas/{id}`` body."""
    found: Mapping[str, Any] = next(s for s in body["steps"] if s["name"] == step)
    return found


def fault_reached(body: Mapping[str, Any], step: str, mode: str) -> bool:
    """Whether the fault on ``step`` has done its work, so that it may be lifted: a delay at or
    after the pivot (or a failed retriable step) once the command was sent again
    (``retries >= 1``); otherwise once the step was answered (neither PENDING nor RUNNING: a
    refusal, or the timeout of a compensatable step). A saga that ended needs nothing more."""
    if body["status"] in TERMINAL:
        return True
    faulted = step_of(body, step)
    resent = (mode == "delay" and faulted["kind"] != "compensatable") or (
        mode == "fail" and faulted["kind"] == "retriable"
    )
    if resent:
        return int(faulted["retries"]) >= 1
    return faulted["status"] not in ("PENDING", "RUNNING")


def step_fault_outcome(body: Mapping[str, Any], step: str, mode: str) -> list[str]:
    """What is wrong with a terminal saga whose ``step`` was delayed past its timeout or made
    to fail (empty: nothing). The rules of the step kinds (docs/sagas.md):

    - a compensatable step or the pivot refused: COMPENSATED, the step FAILED, every earlier
      compensatable step COMPENSATED, every later one PENDING;
    - a compensatable step delayed: COMPENSATED, the step timed out (the failure reason says
      so) and is compensated itself (it may have been applied), the earlier ones too;
    - the pivot or the retriable step delayed, or the retriable step refused for a while:
      COMPLETED, every step SUCCEEDED, the faulted one with ``retries >= 1``.
    """
    names = [s["name"] for s in body["steps"]]
    index = names.index(step)
    faulted = body["steps"][index]
    status, reason = body["status"], body.get("failure_reason") or ""
    problems: list[str] = []

    def want(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    if faulted["kind"] == "compensatable" or (faulted["kind"] == "pivot" and mode == "fail"):
        want(status == "COMPENSATED", f"is {status}, not COMPENSATED")
        if mode == "fail":
            want(faulted["status"] == "FAILED", f"{step} is {faulted['status']}, not FAILED")
        else:
            want(
                faulted["status"] == "COMPENSATED"
                and f"step {step} " in reason
                and "timed out" in reason,
                f"{step} is {faulted['status']} ({reason!r}), not timed out, then compensated",
            )
        for earlier in body["steps"][:index]:
            if earlier["kind"] == "compensatable":
                want(
                    earlier["status"] == "COMPENSATED",
                    f"earlier step {earlier['name']} is {earlier['status']}, not COMPENSATED",
                )
        for later in body["steps"][index + 1 :]:
            want(later["status"] == "PENDING", f"later step {later['name']} is {later['status']}")
    else:
        want(status == "COMPLETED", f"is {status}, not COMPLETED")
        want(int(faulted["retries"]) >= 1, f"{step} has retries {faulted['retries']}, not >= 1")
        for other in body["steps"]:
            want(other["status"] == "SUCCEEDED", f"step {other['name']} is {other['status']}")
    return problems


async def poll(
    load: Load, sagas: list[str], until: Callable[[Mapping[str, Any]], bool], timeout: float
) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    """Read every saga (``GET /api/sagas/{id}``) until ``until(body)`` holds for each; returns
    the last body read of each and the sagas for which it never held within ``timeout``
    seconds, a saga that could never be read among them."""
    deadline = time.monotonic() + timeout
    bodies: dict[str, Mapping[str, Any]] = {}
    done: set[str] = set()
    while True:
        for saga_id in sagas:
            if saga_id in done:
                continue
            body = await load.saga(saga_id)
            if body is not None:
                bodies[saga_id] = body
                if until(body):
                    done.add(saga_id)
        if len(done) == len(sagas) or time.monotonic() > deadline:
            return bodies, [s for s in sagas if s not in done]
        await asyncio.sleep(0.3)
