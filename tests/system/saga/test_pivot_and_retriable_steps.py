"""Pivot and retriable steps are never compensated (issue 11), against the real processes.

A stack of its own with a short step timeout (3 s); each participant command is delayed for
about twice that, or made to fail. At or after the pivot a timeout re-sends the same command, so
the saga completes; a refused pivot compensates the steps before it; a refused retriable step
is tried again until it succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from chassis.faults import FaultFlags
from tests.support.infra import Infra
from tests.system.saga.client import Member, SagaStackClient, eventually
from tests.system.saga.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack, running_stack

pytestmark = pytest.mark.system

STEP_TIMEOUT = 3.0
DELAY_MS = 6_000  # about twice the step timeout
WITHDRAWN_NICKNAME = "탈퇴한 회원"


@pytest.fixture(scope="module")
async def short_stack(infra: Infra) -> AsyncIterator[Stack]:
    async with running_stack(
        infra,
        step_timeout=STEP_TIMEOUT,
        saga_env={"RETRY_BACKOFF_SECONDS": "0.5", "RETRY_BACKOFF_CAP_SECONDS": "1"},
    ) as started:
        yield started


@pytest.fixture(scope="module")
async def short_client(short_stack: Stack) -> AsyncIterator[SagaStackClient]:
    urls = {s: short_stack.url(s) for s in ("member", "board", "qna", "saga")}
    async with httpx.AsyncClient(timeout=30) as http:
        token = await SagaStackClient.log_in(http, urls["member"], ADMIN_EMAIL, ADMIN_PASSWORD)
        me = await http.get(
            f"{urls['member']}/api/members/me", headers={"Authorization": f"Bearer {token}"}
        )
        yield SagaStackClient(http, urls, Member(me.json()["id"], ADMIN_EMAIL, token))


@pytest.fixture(autouse=True)
async def no_faults(short_stack: Stack) -> AsyncIterator[FaultFlags]:
    """Replaces the suite's fixture of that name: every test starts and ends without faults."""
    redis: Redis = Redis.from_url(short_stack.redis_url, decode_responses=True)
    flags = FaultFlags(redis, enabled=True)
    await flags.clear_all()
    yield flags
    await flags.clear_all()
    await redis.aclose()


async def acceptance(client: SagaStackClient, bounty: int = 50) -> tuple[Member, Member, str, str]:
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=bounty)
    answer = await client.answer(answerer, question)
    return asker, answerer, question, answer


async def drain(client: SagaStackClient, service: str, command: str) -> None:
    """Switch the delay off and let the participant finish the re-sent copy it may be sleeping
    on, so that the next test's commands do not queue behind it and time out."""
    await client.set_fault(service, command, "off")
    await asyncio.sleep(DELAY_MS / 1000 + 1)


def step(saga: dict[str, object], name: str) -> dict[str, object]:
    steps = saga["steps"]
    assert isinstance(steps, list)
    found: dict[str, object] = next(s for s in steps if s["name"] == name)
    return found


async def test_a_confirmation_slower_than_the_step_timeout_completes_the_acceptance(
    short_client: SagaStackClient,
) -> None:
    """(a) The issue's reproduction: the late ConfirmAcceptance used to be applied after the
    saga had refunded the bounty and reported COMPENSATED."""
    client = short_client
    asker, answerer, question, answer = await acceptance(client)
    await client.set_fault("qna", "confirm-acceptance", "delay", DELAY_MS)

    saga = await client.wait_saga(await client.accept(asker, question, answer), "COMPLETED")
    await drain(client, "qna", "confirm-acceptance")

    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 3
    confirm = step(saga, "confirm-acceptance")
    assert confirm["kind"] == "retriable"
    assert isinstance(confirm["retries"], int)
    assert confirm["retries"] >= 1
    resolved = await client.question(question)
    assert (resolved["status"], resolved["accepted_answer_id"]) == ("RESOLVED", answer)
    assert (await client.member(asker.id))["points"] == 50
    assert (await client.member(answerer.id))["points"] == 150


async def test_a_completion_slower_than_the_step_timeout_completes_the_withdrawal(
    short_client: SagaStackClient,
) -> None:
    """(b) An erased account whose questions were re-opened by RestoreAuthor, before."""
    client = short_client
    member = await client.sign_up()
    post = await client.write_post(member)
    question = await client.ask(member, bounty=0)
    await client.set_fault("member", "complete-withdrawal", "delay", DELAY_MS)

    saga = await client.wait_saga(await client.withdraw(member), "COMPLETED")
    await drain(client, "member", "complete-withdrawal")  # nothing undoes it afterwards either

    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 4
    pivot = step(saga, "complete-withdrawal")
    assert pivot["kind"] == "pivot"
    assert isinstance(pivot["retries"], int)
    assert pivot["retries"] >= 1
    assert (await client.member(member.id))["status"] == "WITHDRAWN"
    closed = await client.question(question)
    assert (closed["status"], closed["author"]["id"]) == ("CLOSED", None)
    assert (await client.post(post))["author"] == {"id": None, "nickname": WITHDRAWN_NICKNAME}


async def test_a_transfer_slower_than_the_step_timeout_moves_the_points_once(
    short_client: SagaStackClient,
) -> None:
    """(c) The pivot re-sent with the same attempt: member applies it once."""
    client = short_client
    asker, answerer, question, answer = await acceptance(client)
    await client.set_fault("member", "transfer-points", "delay", DELAY_MS)

    saga = await client.wait_saga(await client.accept(asker, question, answer), "COMPLETED")

    transfer = step(saga, "transfer-points")
    assert transfer["kind"] == "pivot"
    assert isinstance(transfer["retries"], int)
    assert transfer["retries"] >= 1
    await drain(client, "member", "transfer-points")
    # the re-sent copy was answered from the command log: still one transfer
    assert (await client.member(asker.id))["points"] == 50
    assert (await client.member(answerer.id))["points"] == 150
    assert (await client.question(question))["status"] == "RESOLVED"


async def test_a_refused_transfer_compensates_the_reservation(
    short_client: SagaStackClient,
) -> None:
    """(d) The pivot refused: the reservation is cancelled, and no points move."""
    client = short_client
    asker, answerer, question, answer = await acceptance(client)
    await client.set_fault("member", "transfer-points", "fail")

    saga = await client.wait_saga(await client.accept(asker, question, answer), "COMPENSATED")

    assert [s["status"] for s in saga["steps"]] == ["COMPENSATED", "FAILED", "PENDING"]
    reopened = await client.question(question)
    assert (reopened["status"], reopened["accepted_answer_id"]) == ("OPEN", None)
    assert (await client.member(asker.id))["points"] == 100
    assert (await client.member(answerer.id))["points"] == 100


async def test_a_failing_confirmation_is_retried_until_it_succeeds(
    short_client: SagaStackClient,
) -> None:
    """(e) ConfirmAcceptance refused (qna failing) for a few seconds, then qna recovers."""
    client = short_client
    asker, answerer, question, answer = await acceptance(client)
    await client.set_fault("qna", "confirm-acceptance", "fail")
    saga_id = await client.accept(asker, question, answer)

    async def retried() -> bool:
        retries = step(await client.saga(saga_id), "confirm-acceptance")["retries"]
        return isinstance(retries, int) and retries >= 2

    await eventually(retried, message="ConfirmAcceptance retried")
    running = await client.saga(saga_id)
    assert running["status"] == "RUNNING"
    assert step(running, "transfer-points")["status"] == "SUCCEEDED"
    await asyncio.sleep(2)
    await client.set_fault("qna", "confirm-acceptance", "off")

    saga = await client.wait_saga(saga_id, "COMPLETED")
    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 3
    assert (await client.question(question))["status"] == "RESOLVED"
    assert (await client.member(asker.id))["points"] == 50
    assert (await client.member(answerer.id))["points"] == 150
