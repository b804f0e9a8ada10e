"""Command line of the demo tour (``make demo``): configuration from the environment, exit codes for scripts.

Usage: ``python -m tools.demo [--gateway URL] [--quiet]``

- ``--gateway`` (default ``GATEWAY_URL``): where the stack's gateway listens.
- ``--quiet``: print only the closing summary (the logins and the pages to open).
- ``ADMIN_EMAIL`` / ``ADMIN_PASSWORD``: the admin the stack seeded on its first migration.
- While ``make observe`` is on (``<RUN_PID_DIR>/observe.env``, docs/observability.md), each saga's
  first request carries a ``traceparent`` of a fresh trace and the tour prints that trace's
  page in Zipkin (``--zipkin URL`` names another Zipkin, ``--zipkin ''`` turns it off).

Settings come from the environment, else from deploy/local/local.env (what ``make run`` reads;
the environment wins, as in deploy/local/run.py), else http://127.0.0.1:8000 for the gateway.

Exit codes: 0 the tour ran to its end; 1 a step got an answer other than the contract's (the
message says which); 3 nothing answers at the gateway, or it is not ready.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from dotenv import dotenv_values

from tools.demo.tour import DemoError, Narrator, StackUnreachable, Tour

LOCAL_ENV = Path(__file__).resolve().parents[2] / "deploy" / "local" / "local.env"
DEFAULT_GATEWAY = "http://127.0.0.1:8000"
EXIT_STEP_FAILED = 1
EXIT_UNREACHABLE = 3
#: Seconds per request; sign-up and log-in hash passwords (argon2), the gateway allows them 10.
REQUEST_TIMEOUT = 15.0


def settings() -> dict[str, str]:
    """local.env's values with the environment's on top (12-factor III)."""
    from_file = dotenv_values(LOCAL_ENV) if LOCAL_ENV.exists() else {}
    merged = {k: v for k, v in from_file.items() if v is not None}
    merged.update(os.environ)
    return merged


def observing_zipkin(env: dict[str, str]) -> str | None:
    """Zipkin's base URL when ``make observe``'s switch is on: the host of the span endpoint
    ``<RUN_PID_DIR>/observe.env`` names (deploy/local/run.py writes it); None otherwise."""
    pid_dir = Path(env.get("RUN_PID_DIR") or ".local/run")
    if not pid_dir.is_absolute():
        pid_dir = LOCAL_ENV.parents[2] / pid_dir
    try:
        observed = dotenv_values(pid_dir / "observe.env")
    except OSError:
        return None
    endpoint = urlsplit(observed.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT") or "")
    return f"{endpoint.scheme}://{endpoint.netloc}" if endpoint.netloc else None


def main(argv: list[str] | None = None) -> int:
    env = settings()
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description="A scripted tour of a running `make run` stack through its gateway.",
    )
    parser.add_argument(
        "--gateway",
        default=env.get("GATEWAY_URL") or DEFAULT_GATEWAY,
        help="the gateway's URL (default: GATEWAY_URL, here %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the closing summary")
    parser.add_argument(
        "--zipkin",
        default=None,
        help="Zipkin's URL for a link to each saga's trace (default: while `make observe` is on)",
    )
    args = parser.parse_args(argv)
    zipkin = observing_zipkin(env) if args.zipkin is None else args.zipkin
    narrator = Narrator(sys.stdout, quiet=args.quiet)
    with httpx.Client(base_url=args.gateway, timeout=REQUEST_TIMEOUT) as http:
        tour = Tour(
            http,
            narrator,
            admin_email=env.get("ADMIN_EMAIL", ""),
            admin_password=env.get("ADMIN_PASSWORD", ""),
            zipkin=zipkin or None,
        )
        try:
            tour.run()
        except StackUnreachable as exc:
            print(f"demo: the stack is not running: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except DemoError as exc:
            print(f"demo: FAILED at step {narrator.number}: {exc}", file=sys.stderr)
            return EXIT_STEP_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
