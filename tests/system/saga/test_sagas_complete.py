"""Both sagas end to end with the real member, board and qna processes: the happy paths and the
two compensations the issue names (an unpayable bounty, a failing retire-author)."""

from __future__ import annotations

import pytest

from tests.system.saga.client import SagaStackClient, eventually

pytestmark = pytest.mark.system

WITHDRAWN_NICKNAME = "탈퇴한 회원"


async def test_answer_acceptance_resolves_the_question_and_moves_the_bounty(
    client: SagaStackClient,
) -> None:
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=30)
    answer = await client.answer(answerer, question)

    saga = await client.wait_saga(await client.accept(asker, question, answer), "COMPLETED")

    assert saga["type"] == "answer-acceptance"
    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 3
    assert saga["ended_at"] is not None
    resolved = await client.question(question)
    assert resolved["status"] == "RESOLVED"
    assert resolved["accepted_answer_id"] == answer
    assert [a["accepted"] for a in resolved["answers"]] == [True]
    assert (await client.member(asker.id))["points"] == 70
    assert (await client.member(answerer.id))["points"] == 130


async def test_member_withdrawal_reaches_every_service(client: SagaStackClient) -> None:
    member = await client.sign_up()
    post = await client.write_post(member)
    question = await client.ask(member, bounty=0)

    saga = await client.wait_saga(await client.withdraw(member), "COMPLETED")

    assert saga["type"] == "member-withdrawal"
    assert [s["status"] for s in saga["steps"]] == ["SUCCEEDED"] * 4
    assert (await client.member(member.id))["status"] == "WITHDRAWN"
    assert not await client.can_log_in(member.email)
    shown = await client.post(post)
    assert shown["author"] == {"id": None, "nickname": WITHDRAWN_NICKNAME}
    closed = await client.question(question)
    assert closed["status"] == "CLOSED"
    assert closed["author"]["id"] is None


async def test_an_unpayable_bounty_ends_compensated_with_the_question_open_again(
    client: SagaStackClient,
) -> None:
    asker, answerer = await client.sign_up(), await client.sign_up()
    question = await client.ask(asker, bounty=500)  # a new member has 100 points
    answer = await client.answer(answerer, question)

    saga = await client.wait_saga(await client.accept(asker, question, answer), "COMPENSATED")

    assert [s["status"] for s in saga["steps"]] == ["COMPENSATED", "FAILED", "PENDING"]
    assert "transfer-points" in saga["failure_reason"]
    reopened = await client.question(question)
    assert reopened["status"] == "OPEN"
    assert reopened["accepted_answer_id"] is None
    assert (await client.member(asker.id))["points"] == 100
    assert (await client.member(answerer.id))["points"] == 100


async def test_a_failing_retire_author_restores_the_member_and_the_posts(
    client: SagaStackClient,
) -> None:
    member = await client.sign_up()
    post = await client.write_post(member)
    question = await client.ask(member, bounty=0)
    await eventually(
        lambda: _nickname_shown(client, post, member.id), message="the post list knows the author"
    )
    await client.set_fault("qna", "retire-author", "fail")

    saga = await client.wait_saga(await client.withdraw(member), "COMPENSATED")

    assert [s["status"] for s in saga["steps"]] == [
        "COMPENSATED",
        "COMPENSATED",
        "FAILED",
        "PENDING",
    ]
    assert "fault injected into qna/retire-author" in saga["failure_reason"]
    assert (await client.member(member.id))["status"] == "ACTIVE"
    assert await client.can_log_in(member.email)
    assert (await client.post(post))["author"]["id"] == member.id
    assert (await client.question(question))["status"] == "OPEN"


async def _nickname_shown(client: SagaStackClient, post: str, member_id: str) -> bool:
    author = (await client.post(post))["author"]
    return bool(author["id"] == member_id and author["nickname"])
