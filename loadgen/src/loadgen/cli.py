"""The ``loadgen`` command: Locust, headless, with this package's locustfile (a thin launcher).

``loadgen --host URL --rate N [locust flags...]`` runs ``locust -f <locustfile> --headless``
in this process's place (``exec``), so Ctrl-C and SIGTERM reach Locust itself, which prints
its summary on the way out. Flags it does not know go to Locust unchanged (``--run-time``,
``--csv``, ``--loglevel``...); ``--host`` defaults to ``GATEWAY_URL``, then to ``make run``'s
gateway.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"


def locust_argv(argv: Sequence[str], environ: dict[str, str] | None = None) -> list[str]:
    """The Locust command line for ``argv`` (the arguments after ``loadgen``)."""
    environ = dict(os.environ) if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="loadgen",
        description="Realistic mixed traffic through the gateway until Ctrl-C (Locust, headless). "
        "Other flags go to Locust.",
    )
    parser.add_argument(
        "--host",
        default=environ.get("GATEWAY_URL") or DEFAULT_GATEWAY_URL,
        help="the gateway's base URL (default: GATEWAY_URL or %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=float(environ.get("LOADGEN_RATE") or 5),
        help="requests per second in total (default: LOADGEN_RATE or 5)",
    )
    known, rest = parser.parse_known_args(list(argv))
    if not known.rate > 0:
        parser.error(f"--rate must be a positive number of requests per second, not {known.rate}")
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        known.host,
        "--rate",
        str(known.rate),
        *rest,
    ]


def main(argv: Sequence[str] | None = None) -> None:
    command = locust_argv(sys.argv[1:] if argv is None else argv)
    # exec, not a child process: Ctrl-C and SIGTERM go straight to Locust.
    os.execv(command[0], command)  # noqa: S606 - a fixed argv, no shell


if __name__ == "__main__":
    main()
