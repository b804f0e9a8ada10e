"""``make fuzz``: the long schema-fuzzing run (property-based testing) against a fresh stack.

Starts member, board, qna and saga with a gateway in front, fuzzes each service's api and the
gateway with ``--cases`` generated requests each, prints per target the cases, 5xx answers,
schema violations and duration, then every distinct finding with a request to reproduce it.
Exit status 1 when any target got a 5xx or a schema violation.

    uv run python -m tests.system.fuzz --cases 1000 --seed 12 --max-seconds 600
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from tests.support.infra import provide_infra
from tests.system.fuzz.harness import Report, fuzz
from tests.system.fuzz.stack import fuzz_stack
from tests.system.fuzz.targets import fuzz_targets, fuzz_tokens


async def _run(cases: int, seed_value: int, max_seconds: float, only: set[str]) -> list[Report]:
    reports: list[Report] = []
    with provide_infra() as infra:
        async with fuzz_stack(infra) as stack:
            tokens = await fuzz_tokens(stack)
            for target in await fuzz_targets(stack, tokens):
                if only and target.name not in only:
                    continue
                report = await asyncio.to_thread(
                    fuzz, target, cases=cases, seed_value=seed_value, max_seconds=max_seconds
                )
                print(report.line(), flush=True)
                reports.append(report)
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=int(os.environ.get("FUZZ_CASES", "1000")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "12")))
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=float(os.environ.get("FUZZ_MAX_SECONDS", "900")),
        help="wall-clock cap per target",
    )
    parser.add_argument("targets", nargs="*", help="member, board, qna, saga, gateway (all)")
    args = parser.parse_args()
    reports = asyncio.run(_run(args.cases, args.seed, args.max_seconds, set(args.targets)))
    print("\nfindings:")
    for report in reports:
        for finding in report.findings.values():
            print(f"- [{finding.check}] {finding.operation} -> {finding.status}: {finding.message}")
            print(f"    {finding.reproduce}")
    print("\nsummary:")
    for report in reports:
        print(f"  {report.line()}")
    failed = [r for r in reports if r.server_errors or r.violations or r.out_of_time]
    return 1 if failed or len(reports) == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
