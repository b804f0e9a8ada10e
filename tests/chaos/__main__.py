"""Fault suite runner (``make chaos``): every scenario on the real stack, then one result table.

Usage::

    python -m tests.chaos                      # the full suite (about 12 minutes)
    python -m tests.chaos --short              # the short version that `make test` runs
                                               # (results-short.md, violations-short.txt)
    python -m tests.chaos postgres-restart     # one scenario (or several) alone

Exit code 0 when every invariant held in every scenario, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from tests.chaos import invariants
from tests.chaos.scenarios import (
    FULL,
    SCENARIOS,
    SHORT,
    Row,
    run_scenario,
    table,
    write_results,
)
from tests.chaos.stack import CHAOS_DIR, ChaosStack


async def run(names: list[str], short: bool) -> list[Row]:
    scale = SHORT if short else FULL
    stack = ChaosStack()
    rows: list[Row] = []
    try:
        print(f"chaos: starting the chaos instance and the system ({scale.name} scale)", flush=True)
        await asyncio.to_thread(stack.start)
        baseline = await invariants.points_baseline()
        for name in names:
            started = time.monotonic()
            print(f"chaos: {name} ...", flush=True)
            row = await run_scenario(name, stack, scale, baseline)
            rows.append(row)
            verdict = "ok" if not row.violations else f"{len(row.violations)} violation(s)"
            print(
                f"chaos: {name} done in {time.monotonic() - started:.0f} s: {verdict}", flush=True
            )
            for violation in row.violations[:30]:
                print(f"    - {violation}", flush=True)
    finally:
        print("chaos: stopping the system and the chaos instance", flush=True)
        await asyncio.to_thread(stack.stop)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        choices=[*SCENARIOS, []],
        metavar="SCENARIO",
        help=f"run only these (default: all): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--short", action="store_true", help="smaller loads and windows")
    args = parser.parse_args()
    started = time.monotonic()
    rows = asyncio.run(run(args.scenarios or list(SCENARIOS), args.short))
    result = table(rows)
    print()
    print(result)
    print(f"\nchaos: {len(rows)} scenario(s) in {time.monotonic() - started:.0f} s")
    write_results(rows, CHAOS_DIR, short=args.short)
    failed = [r for r in rows if r.violations]
    for row in failed:
        print(f"chaos: {row.scenario}: {len(row.violations)} violation(s)")
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
