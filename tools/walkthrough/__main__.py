"""Failure walkthrough runner: ``python -m tools.walkthrough NAME [--check-only]`` against a running stack, PASS (exit 0), FAIL (exit 1) or INTERRUPTED (130 Ctrl-C, 143 SIGTERM).

The stack is ``make run``'s unless the environment describes another one with the settings
deploy/local/run.py reads (``RUN_PORT_OFFSET``, ``RUN_PID_DIR``, the database URLs, infra.sh's
``MSA_LOCAL_DIR``, ``PG_PORT`` ...; see tools/chaos/stack.py ``Target.from_env``). Whatever a
walkthrough changes (a fault flag, a stopped broker, a corrupted row) is put back before it
ends, also when it fails or is interrupted (Ctrl-C, SIGTERM), and checked to be back.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType

from tools.chaos.load import Load
from tools.chaos.stack import Target
from tools.walkthrough import (
    fail_saga_step,
    kill_worker,
    replay_read_model,
    roll_deployment,
    stop_kafka,
)
from tools.walkthrough.common import session
from tools.walkthrough.guide import Guide

WALKTHROUGHS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (kill_worker, fail_saga_step, stop_kafka, roll_deployment, replay_read_model)
}


async def walk(name: str, guide: Guide) -> None:
    module = WALKTHROUGHS[name]
    run: Callable[[Guide, Load], Awaitable[None]] = module.run
    # SIGTERM cancels the walkthrough as Ctrl-C does (asyncio.run's own handling of SIGINT):
    # its finally blocks put back what it changed.
    # Only the first SIGTERM counts (make passes its own on to us): a second must not cut
    # the putting back short.
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    def cancel_once() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        guide.interrupt("SIGTERM")
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, cancel_once)
    # The stack is checked before anything is narrated: a stack that is down fails at once.
    async with session(guide.target) as load:
        guide.title(name, module.SUMMARY)
        await run(guide, load)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.walkthrough",
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="walkthroughs:\n"
        + "\n".join(
            f"  {name:<18} {(m.__doc__ or '').split(': ', 1)[-1].split(' (')[0]}"
            for name, m in WALKTHROUGHS.items()
        ),
    )
    parser.add_argument(
        "name", choices=list(WALKTHROUGHS), metavar="NAME", help=", ".join(WALKTHROUGHS)
    )
    parser.add_argument(
        "--check-only", action="store_true", help="the same actions and checks, terse, no pauses"
    )
    parser.add_argument(
        "--log",
        type=Path,
        help="a file with the `make run` output (make run 2>&1 | tee FILE): log lines are shown from it",
    )
    parser.add_argument(
        "--pause", type=float, default=2.0, help="seconds after each narrated stage"
    )
    args = parser.parse_args(argv)
    guide = Guide(Target.from_env(), check_only=args.check_only, log=args.log, pause=args.pause)
    # Ctrl-C interrupts even where the shell started us with SIGINT ignored (in the background).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(walk(args.name, guide))
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        # The finally blocks have run: each checked what it put back (Guide.put_back).
        if guide.interrupted_by is None:
            guide.interrupt("SIGINT" if isinstance(exc, KeyboardInterrupt) else "SIGTERM")
    except Exception as exc:  # any error ends the walkthrough in FAIL, with its reason
        guide.fail(f"{type(exc).__name__}: {exc}")
    return guide.result()


if __name__ == "__main__":
    sys.exit(main())
