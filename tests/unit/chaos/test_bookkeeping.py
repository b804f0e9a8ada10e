"""Fault suite bookkeeping: read-model differences become lost or duplicated events, and exits are attributed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.chaos import stack as chaos_stack
from tests.chaos.scenarios import Row, table
from tools.chaos.readmodel import Findings


def test_a_short_counter_is_lost_events_and_an_excess_is_duplicates() -> None:
    found = Findings()
    found.compare("post comment_count", expected=10, actual=7)
    found.compare("member comments", expected=2, actual=3)
    found.compare("member answers", expected=4, actual=4)
    assert (found.lost, found.duplicates) == (3, 1)
    assert found.violations == [
        "post comment_count: 7, expected 10",
        "member comments: 3, expected 2",
    ]


def test_a_points_difference_is_one_event_whatever_its_size() -> None:
    found = Findings()
    found.compare("points", expected=150, actual=100, per_event=False)
    assert (found.lost, found.duplicates) == (1, 0)


def test_only_exits_the_suite_did_not_cause_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "run.py         | board-api exited unexpectedly with code -9; restarting in 0.5s\n"
        "run.py         | qna-worker exited unexpectedly with code 1; restarting in 0.5s\n"
        "run.py         | qna-worker exited unexpectedly with code 1; restarting in 1.0s\n"
    )
    monkeypatch.setattr(chaos_stack, "SUPERVISOR_LOG", log)
    stack = chaos_stack.ChaosStack()
    stack.faults.append(chaos_stack.Fault("kill", "board-api", 0.0))
    assert stack.unexpected_exits(Counter(), Counter()) == [
        "qna-worker exited 2 time(s) on its own (restarted by the supervisor)"
    ]
    # Exits before the scenario began are not its own.
    assert stack.unexpected_exits(Counter({"qna-worker": 2}), Counter()) == []


def test_the_table_has_one_row_per_scenario_and_says_never_when_it_did_not_converge() -> None:
    rows = [Row("kafka-restart", 10, 1, 30, 0, 0, 0, 2.04, None)]
    lines = table(rows).splitlines()
    assert lines[0].startswith("| scenario | requests sent | requests failed | events written")
    assert lines[2] == "| kafka-restart | 10 | 1 | 30 | 0 | 0 | 0 | 2.0 s | never |"
