"""Fixtures of the fault suite: its own infrastructure instance and system, started once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.scenarios import Row, table
from tests.chaos.stack import CHAOS_DIR, ChaosStack


@pytest.fixture(scope="module")
def chaos_stack() -> Iterator[ChaosStack]:
    """The chaos instance (reset, then up) and the system on it; both stopped afterwards,
    also when a scenario fails."""
    stack = ChaosStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def chaos_rows() -> Iterator[list[Row]]:
    """The table rows of the module's scenarios, written to .local/chaos/results-short.md."""
    rows: list[Row] = []
    yield rows
    if rows:
        CHAOS_DIR.mkdir(parents=True, exist_ok=True)
        (CHAOS_DIR / "results-short.md").write_text(table(rows) + "\n", encoding="utf-8")
        print("\n" + table(rows))
