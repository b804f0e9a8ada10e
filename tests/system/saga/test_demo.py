"""`make demo` (tools/demo) against the saga system stack through its gateway: what it leaves, checked through the API.

The tour runs twice on the same stack (its members carry a suffix of each run, so a second run
must work too): once as ``make demo`` runs it, a ``python -m tools.demo`` process, and once in
this process, which hands back the ids it created. Each leaves posts with comments on two
boards, two accepted answers, one open question, points moved, and a withdrawn member whose
saga COMPLETED. A saga ending otherwise, and a gateway nobody listens on, end the tour with a
message and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.support.infra import REPO
from tests.support.processes import free_port
from tests.system.saga.client import SagaStackClient
from tests.system.saga.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack
from tools.demo.__main__ import EXIT_STEP_FAILED, EXIT_UNREACHABLE
from tools.demo.tour import BOUNTY, SECOND_BOUNTY, WITHDRAWN_NICKNAME, Narrator, Result, Tour

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]


def demo(gateway: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m tools.demo`` as ``make demo`` runs it, with the stack's seeded admin."""
    return subprocess.run(
        [sys.executable, "-m", "tools.demo", "--gateway", gateway, *args],
        env={**os.environ, "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def tour_in_process(gateway: str) -> tuple[Result, str]:
    """One tour in this process: what it left, and what it printed."""
    out = io.StringIO()
    with httpx.Client(base_url=gateway, timeout=15) as http:
        tour = Tour(http, Narrator(out), admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD)
        return tour.run(), out.getvalue()


async def test_the_tour_runs_twice_and_leaves_what_the_front_end_shows(
    stack: Stack, client: SagaStackClient
) -> None:
    first = await asyncio.to_thread(demo, stack.gateway_url, "--quiet")
    assert first.returncode == 0, first.stdout + first.stderr
    run_id = re.search(r"demo (\w+): done", first.stdout)
    assert run_id, first.stdout
    # --quiet: the summary only
    assert "POST" not in first.stdout
    assert "member-withdrawal COMPLETED" in first.stdout

    result, narration = await asyncio.to_thread(tour_in_process, stack.gateway_url)
    assert result.run_id != run_id[1]
    for shown in ("POST   /api/members → 201", "look · saga", "look · page", "look · metric"):
        assert shown in narration

    # the first run's content, found by its suffix in the read models' lists
    free = next(
        b
        for b in (await client.http.get(f"{stack.gateway_url}/api/boards")).json()
        if b["slug"] == "free"
    )
    posts = (
        await client.http.get(
            f"{stack.gateway_url}/api/boards/{free['id']}/posts", params={"q": run_id[1]}
        )
    ).json()["items"]
    assert sorted(p["comment_count"] for p in posts) == [1, 3]  # the leaver's comment too
    questions = (
        await client.http.get(f"{stack.gateway_url}/api/questions", params={"q": run_id[1]})
    ).json()["items"]
    assert sorted(q["status"] for q in questions) == ["OPEN", "RESOLVED", "RESOLVED"]

    # the second run's, by id
    for post_id in [*result.post_ids, result.notice_id]:
        assert (await client.post(post_id))["title"].endswith(f"({result.run_id})")
    question = await client.question(result.question_id)
    assert question["status"] == "RESOLVED"
    assert question["accepted_answer_id"] == result.accepted_answer_id
    assert [a["author"]["id"] for a in question["answers"] if a["accepted"]] == [result.answerer.id]
    assert (await client.question(result.second_question_id))["status"] == "RESOLVED"
    assert (await client.question(result.open_question_id))["status"] == "OPEN"
    assert (await client.member(result.asker.id))["points"] == 100 - BOUNTY + SECOND_BOUNTY
    assert (await client.member(result.answerer.id))["points"] == 100 + BOUNTY - SECOND_BOUNTY
    for saga_id, saga_type in [
        (result.acceptance_saga_id, "answer-acceptance"),
        (result.second_acceptance_saga_id, "answer-acceptance"),
        (result.withdrawal_saga_id, "member-withdrawal"),
    ]:
        saga = await client.saga(saga_id)
        assert (saga["type"], saga["status"]) == (saga_type, "COMPLETED")
    assert (await client.member(result.withdrawn.id))["status"] == "WITHDRAWN"
    comments = (
        await client.http.get(f"{client.urls['board']}/api/posts/{result.post_ids[0]}/comments")
    ).json()["items"]
    assert [c["author"] for c in comments if c["author"]["id"] is None] == [
        {"id": None, "nickname": WITHDRAWN_NICKNAME}
    ]


async def test_a_saga_ending_otherwise_fails_the_tour_with_its_reason(
    stack: Stack, client: SagaStackClient
) -> None:
    await client.set_fault("member", "transfer-points", "fail")  # the conftest clears it

    ran = await asyncio.to_thread(demo, stack.gateway_url)

    assert ran.returncode == EXIT_STEP_FAILED, ran.stdout + ran.stderr
    assert "ended COMPENSATED, expected COMPLETED" in ran.stderr
    assert "fault injected into member/transfer-points" in ran.stderr
    assert "transfer-points FAILED" in ran.stderr


def test_no_stack_at_the_gateway_address_is_said_plainly() -> None:
    ran = demo(f"http://127.0.0.1:{free_port()}")

    assert ran.returncode == EXIT_UNREACHABLE, ran.stdout + ran.stderr
    assert "the stack is not running" in ran.stderr
    assert "make run" in ran.stderr
