"""Fault suite, short version (inside ``make test``): every scenario, smaller loads and windows.

The full version is ``make chaos`` (``python -m tests.chaos``); docs/reliability.md has both.
"""

from __future__ import annotations

import pytest

from tests.chaos import invariants
from tests.chaos.scenarios import SCENARIOS, SHORT, Row, run_scenario, table
from tests.chaos.stack import ChaosStack

pytestmark = [pytest.mark.chaos, pytest.mark.system]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_invariants_hold_after(
    scenario: str, chaos_stack: ChaosStack, chaos_rows: list[Row]
) -> None:
    """After the fault is lifted and the system has drained, every invariant holds."""
    baseline = chaos_stack.points_baseline
    if baseline is None:
        baseline = chaos_stack.points_baseline = await invariants.points_baseline()
    row = await run_scenario(scenario, chaos_stack, SHORT, baseline)
    chaos_rows.append(row)
    assert not row.violations, table([row]) + "\n" + "\n".join(row.violations[:40])
