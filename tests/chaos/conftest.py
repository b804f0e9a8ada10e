"""Fixtures of the fault suite: its own infrastructure instance and system, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.scenarios import Row, table, write_results
from tests.chaos.stack import CHAOS_DIR, ChaosStack


@pytest.fixture(scope="session")
def chaos_stack() -> Iterator[ChaosStack]:
    """The chaos instance (reset, then up) and the system on it, shared by the short fault
    suite and the walkthroughs (one start of a few minutes); both stopped afterwards, also
    when a scenario fails."""
    stack = ChaosStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def chaos_rows() -> Iterator[list[Row]]:
    """The table rows of the module's scenarios, written to .local/chaos/results-short.md and
    their violations to .local/chaos/violations-short.txt (as ``python -m tests.chaos --short``)."""
    rows: list[Row] = []
    yield rows
    if rows:
        write_results(rows, CHAOS_DIR, short=True)
        print("\n" + table(rows))
