"""Fault suite checks: saga outcomes per step kind, vacuous scenarios, per-violation counts, result files."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import stack as chaos_stack
from tests.chaos.scenarios import (
    COMPENSATION_FAULTS,
    SHORT,
    WRITE_KINDS,
    Row,
    compensation_fault_outcome,
    minimums,
    too_few,
    write_results,
)
from tools.chaos.load import Request
from tools.chaos.readmodel import Findings
from tools.chaos.sagas import fault_reached, step_fault_outcome
from tools.chaos.stack import Infra, Processes

ACCEPTANCE_KINDS = (
    ("reserve-acceptance", "compensatable"),
    ("transfer-points", "pivot"),
    ("confirm-acceptance", "retriable"),
)


def acceptance(
    status: str, steps: dict[str, str], retries: dict[str, int] | None = None, reason: str = ""
) -> dict[str, Any]:
    """A ``GET /api/sagas/{id}`` body of an answer-acceptance saga."""
    return {
        "status": status,
        "failure_reason": reason or None,
        "steps": [
            {
                "name": name,
                "kind": kind,
                "status": steps.get(name, "PENDING"),
                "retries": (retries or {}).get(name, 0),
            }
            for name, kind in ACCEPTANCE_KINDS
        ],
    }


COMPLETED = {name: "SUCCEEDED" for name, _ in ACCEPTANCE_KINDS}


# ---------------------------------------------------------------------- lifting a fault


def test_a_fault_is_not_lifted_before_its_step_was_answered() -> None:
    running = acceptance("RUNNING", {"reserve-acceptance": "RUNNING"})
    assert not fault_reached(running, "reserve-acceptance", "fail")
    assert not fault_reached(running, "reserve-acceptance", "delay")
    refused = acceptance("COMPENSATING", {"reserve-acceptance": "FAILED"})
    assert fault_reached(refused, "reserve-acceptance", "fail")


def test_a_delay_at_the_pivot_is_lifted_only_after_a_resend() -> None:
    waiting = acceptance(
        "RUNNING", {"reserve-acceptance": "SUCCEEDED", "transfer-points": "RUNNING"}
    )
    assert not fault_reached(waiting, "transfer-points", "delay")
    resent = acceptance(
        "RUNNING",
        {"reserve-acceptance": "SUCCEEDED", "transfer-points": "RUNNING"},
        {"transfer-points": 1},
    )
    assert fault_reached(resent, "transfer-points", "delay")


def test_a_failing_retriable_step_is_lifted_only_after_a_new_attempt() -> None:
    steps = {**COMPLETED, "confirm-acceptance": "RUNNING"}
    assert not fault_reached(acceptance("RUNNING", steps), "confirm-acceptance", "fail")
    retried = acceptance("RUNNING", steps, {"confirm-acceptance": 1})
    assert fault_reached(retried, "confirm-acceptance", "fail")


# ---------------------------------------------------------------------- outcomes per kind


def test_a_refused_compensatable_step_must_compensate_with_that_step_failed() -> None:
    good = acceptance("COMPENSATED", {"reserve-acceptance": "FAILED"})
    assert step_fault_outcome(good, "reserve-acceptance", "fail") == []
    # The fault lifted before the participant read it: the saga completed, which says nothing.
    missed = acceptance("COMPLETED", COMPLETED)
    assert step_fault_outcome(missed, "reserve-acceptance", "fail")


def test_a_refused_pivot_compensates_the_earlier_steps() -> None:
    good = acceptance(
        "COMPENSATED", {"reserve-acceptance": "COMPENSATED", "transfer-points": "FAILED"}
    )
    assert step_fault_outcome(good, "transfer-points", "fail") == []
    left = acceptance(
        "COMPENSATED", {"reserve-acceptance": "SUCCEEDED", "transfer-points": "FAILED"}
    )
    assert step_fault_outcome(left, "transfer-points", "fail") == [
        "earlier step reserve-acceptance is SUCCEEDED, not COMPENSATED"
    ]


def test_a_delayed_compensatable_step_times_out_and_is_compensated() -> None:
    reason = "step reserve-acceptance (ReserveAcceptance) timed out after 3s"
    good = acceptance("COMPENSATED", {"reserve-acceptance": "COMPENSATED"}, reason=reason)
    assert step_fault_outcome(good, "reserve-acceptance", "delay") == []
    # Compensated, but not because of the timeout (a refusal of a later step, say).
    other = acceptance(
        "COMPENSATED",
        {"reserve-acceptance": "COMPENSATED"},
        reason="step transfer-points (TransferPoints) failed: no points",
    )
    assert step_fault_outcome(other, "reserve-acceptance", "delay")


def test_a_delayed_pivot_or_retriable_step_completes_after_a_resend() -> None:
    for step in ("transfer-points", "confirm-acceptance"):
        good = acceptance("COMPLETED", COMPLETED, {step: 1})
        assert step_fault_outcome(good, step, "delay") == []
        # Completed without a re-send: the delay never outlasted the timeout.
        assert step_fault_outcome(acceptance("COMPLETED", COMPLETED), step, "delay")
        compensated = acceptance(
            "COMPENSATED", {"reserve-acceptance": "COMPENSATED", step: "TIMED_OUT"}, {step: 1}
        )
        assert step_fault_outcome(compensated, step, "delay")


def test_a_failed_then_healed_retriable_step_completes() -> None:
    good = acceptance("COMPLETED", COMPLETED, {"confirm-acceptance": 2})
    assert step_fault_outcome(good, "confirm-acceptance", "fail") == []
    failed = acceptance(
        "FAILED", {**COMPLETED, "confirm-acceptance": "FAILED"}, {"confirm-acceptance": 20}
    )
    assert step_fault_outcome(failed, "confirm-acceptance", "fail")


def test_a_faulted_compensation_still_ends_compensated_never_failed() -> None:
    delayed, refused_once = COMPENSATION_FAULTS[0], COMPENSATION_FAULTS[1]
    steps = {"reserve-acceptance": "COMPENSATED", "transfer-points": "FAILED"}
    resent = acceptance("COMPENSATED", steps, {"reserve-acceptance": 1})
    assert compensation_fault_outcome(resent, delayed, new_attempt=False) == []
    assert compensation_fault_outcome(acceptance("COMPENSATED", steps), delayed, False) == [
        "the compensation of reserve-acceptance was not re-sent (retries 0)"
    ]
    assert compensation_fault_outcome(acceptance("COMPENSATED", steps), refused_once, True) == []
    assert compensation_fault_outcome(acceptance("COMPENSATED", steps), refused_once, False)
    parked = acceptance(
        "FAILED", {"reserve-acceptance": "COMPENSATION_FAILED", "transfer-points": "FAILED"}
    )
    assert len(compensation_fault_outcome(parked, refused_once, True)) == 2


# ---------------------------------------------------------------------- nothing vacuous


def request(op: str, status: int, ok: bool = True) -> Request:
    now = time.monotonic()
    return Request(op, now, now, status, ok)


def test_a_scenario_that_started_no_saga_is_a_violation() -> None:
    wanted = minimums("saga-worker-kills", SHORT)
    sent = [request(op, 201) for op in WRITE_KINDS if op not in ("accept", "withdraw")]
    sent += [request("accept", 202)] * wanted["accept"]
    # Refusals (excused or not) are not writes.
    sent += [request("withdraw", 403)] * 5 + [request("withdraw", 502, ok=False)]
    assert too_few(sent, wanted) == [
        f"only 0 successful withdraw request(s), at least {wanted['withdraw']} needed"
        " for the checks to bite"
    ]
    sent += [request("withdraw", 202)] * wanted["withdraw"]
    assert too_few(sent, wanted) == []


def test_every_load_scenario_needs_every_write_kind_and_the_saga_one_every_saga() -> None:
    assert set(minimums("postgres-restart", SHORT)) == set(WRITE_KINDS)
    assert {"delete-post", "delete-question", "delete-answer"} <= set(WRITE_KINDS)
    per_fault = SHORT.sagas_per_fault
    assert minimums("saga-step-faults", SHORT) == {
        "accept": 8 * per_fault,
        "withdraw": 10 * per_fault,
    }


def test_a_repaired_old_loss_does_not_cancel_a_new_one() -> None:
    before = Findings()
    before.compare("post a comment_count (list)", expected=10, actual=7)
    known = set(before.violations)
    after = Findings()  # the old loss was repaired, a new one of the same size appeared
    after.compare("post b comment_count (list)", expected=5, actual=2)
    assert after.new_counts(known) == (3, 0)
    # A loss reported earlier and still there is not counted again.
    after.compare("post a comment_count (list)", expected=10, actual=7)
    assert after.new_counts(known) == (3, 0)
    assert (after.lost, after.duplicates) == (6, 0)


# ---------------------------------------------------------------------- files


def test_a_short_run_does_not_overwrite_the_full_suites_results(tmp_path: Path) -> None:
    rows = [Row("kafka-restart", violations=["1 events dead-lettered"])]
    full = write_results(rows, tmp_path, short=False)
    short = write_results([Row("kafka-restart")], tmp_path, short=True)
    assert [p.name for p in full] == ["results.md", "violations.txt"]
    assert [p.name for p in short] == ["results-short.md", "violations-short.txt"]
    assert full[1].read_text() == "kafka-restart: 1 events dead-lettered\n"
    assert "kafka-restart" in full[0].read_text()


def test_stopping_the_stack_closes_the_supervisor_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Infra, "run", lambda *args, **kw: None)
    target = dataclasses.replace(chaos_stack.chaos_target(), processes=Processes(tmp_path))
    stack = chaos_stack.ChaosStack(target=target)
    log = (tmp_path / "run.log").open("wb")
    stack._log = log
    stack.stop()
    assert log.closed
