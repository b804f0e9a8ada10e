"""The load generator against a whole stack: every persona gets through the gateway and both sagas complete.

``loadgen`` (Locust, headless, as ``make loadgen`` runs it) drives an isolated stack
(``running_stack``: fresh databases, own topic prefix, the gateway in front with local.env's
rate limit) until Locust's own statistics show a successful request of every persona, an
answer-acceptance and a member-withdrawal saga COMPLETED and a token refresh, then it is
stopped with SIGTERM, as Ctrl-C would. Every request counts as failed unless its status is
one the contract gives for it, so "no failure" means no 5xx and no unexpected 4xx. The sagas
are checked again in the saga database, behind the generator's back.
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from loadgen.mix import SHARES
from tests.support.infra import REPO, Infra
from tests.system.saga.stack import Stack, running_stack

# Eight service processes and the gateway start in a minute or so, but in several on a busy
# shared machine: the stack's start is inside the limit, and the traffic at most 75 s of it.
pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

#: Fault flags are global Redis keys: this suite keeps its (none) in a database of its own
#: (saga system tests 12, fuzz 13, browser tests 14).
LOADGEN_REDIS_DB = 15
LOADGEN = str(Path(sys.executable).with_name("loadgen"))
#: Requests per second: enough for every persona to act within seconds on a shared machine.
RATE = 20
#: At least this much traffic, at most this long for everything to show.
MIN_SECONDS = 10.0
MAX_SECONDS = 75.0
#: Tokens are refreshed 5 s after each login or refresh (they live 900 s), so the run
#: exercises rotation too.
REFRESH_MARGIN = 895

ACCEPTED = "accepter answer-acceptance COMPLETED"
WITHDRAWN = "withdrawer member-withdrawal COMPLETED"
REFRESH_SUFFIX = "POST /api/auth/refresh"


@pytest.fixture(scope="module")
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    async with running_stack(
        infra,
        redis_db=LOADGEN_REDIS_DB,
        gateway_env={"RATE_LIMIT_PER_MINUTE": "6000"},  # as in deploy/local/local.env
    ) as started:
        yield started


def read_stats(prefix: Path) -> dict[str, tuple[int, int]]:
    """Locust's ``<prefix>_stats.csv``: name -> (requests, failures), the Aggregated row left out."""
    path = Path(f"{prefix}_stats.csv")
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as file:
        return {
            row["Name"]: (int(row["Request Count"]), int(row["Failure Count"]))
            for row in csv.DictReader(file)
            if row["Name"] != "Aggregated"
        }


def succeeded(stats: dict[str, tuple[int, int]], persona: str) -> int:
    """Successful requests (and sagas) of one persona."""
    return sum(n - failed for name, (n, failed) in stats.items() if name.split()[0] == persona)


def everything_shown(stats: dict[str, tuple[int, int]]) -> bool:
    return (
        all(succeeded(stats, persona) > 0 for persona in SHARES)
        and stats.get(ACCEPTED, (0, 0))[0] > 0
        and stats.get(WITHDRAWN, (0, 0))[0] > 0
        and any(name.endswith(REFRESH_SUFFIX) and n > f for name, (n, f) in stats.items())
    )


def tail(path: Path, characters: int = 4000) -> str:
    return path.read_text(encoding="utf-8")[-characters:] if path.exists() else f"({path} missing)"


async def completed_sagas(stack: Stack) -> dict[str, int]:
    conn = await asyncpg.connect(
        stack.databases["saga"].replace("postgresql+asyncpg", "postgresql")
    )
    try:
        rows = await conn.fetch(
            "SELECT type, count(*) AS n FROM saga_instances WHERE status = 'COMPLETED' GROUP BY type"
        )
    finally:
        await conn.close()
    return {row["type"]: int(row["n"]) for row in rows}


async def test_every_persona_gets_through_the_gateway_and_sagas_complete(
    stack: Stack, tmp_path: Path
) -> None:
    prefix, log = tmp_path / "run", tmp_path / "locust.log"
    argv = [
        LOADGEN,
        "--host",
        stack.gateway_url,
        "--rate",
        str(RATE),
        "--spawn-rate",
        "4",
        "--refresh-margin",
        str(REFRESH_MARGIN),
        "--csv",
        str(prefix),
        "--only-summary",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "LOADGEN_"))}
    started = time.monotonic()
    with log.open("w") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            while time.monotonic() - started < MAX_SECONDS and process.returncode is None:
                await asyncio.sleep(1)
                if time.monotonic() - started >= MIN_SECONDS and everything_shown(
                    read_stats(prefix)
                ):
                    break
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)  # as Ctrl-C: Locust stops, writes its summary
            await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    stats = read_stats(prefix)
    failed = {name: f for name, (_, f) in stats.items() if f}

    assert stats, f"no statistics written:\n{tail(log)}"
    assert not failed, f"failed requests: {failed}\n{tail(Path(f'{prefix}_failures.csv'))}"
    assert process.returncode == 0, tail(log)
    for persona in SHARES:
        assert succeeded(stats, persona) > 0, f"no successful request by {persona}: {stats}"
    assert stats.get(ACCEPTED, (0, 0))[0] > 0, f"no answer-acceptance saga completed: {stats}"
    assert stats.get(WITHDRAWN, (0, 0))[0] > 0, f"no member-withdrawal saga completed: {stats}"
    assert any(name.endswith(REFRESH_SUFFIX) for name in stats), "no token was refreshed"
    readers = succeeded(stats, "reader")
    assert readers > sum(n for n, _ in stats.values()) / 3, "readers send most of the traffic"
    sagas = await completed_sagas(stack)
    assert sagas.get("answer-acceptance", 0) >= stats[ACCEPTED][0]
    assert sagas.get("member-withdrawal", 0) >= stats[WITHDRAWN][0]
