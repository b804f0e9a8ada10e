"""RetireAuthor / RestoreAuthor: the qna step of the member-withdrawal saga and its compensation."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.qna.harness import Json, QnaHarness

pytestmark = pytest.mark.integration

ANONYMOUS = {"id": None, "nickname": "탈퇴한 회원"}


async def test_retire_then_restore_is_a_round_trip(qna: QnaHarness) -> None:
    leaving, other, resolver = qna.member(), qna.member(), qna.member()
    await qna.publish_member_event(
        "MemberRegistered", member_id=str(leaving.id), nickname="leaver", role="USER"
    )
    open_question = await qna.ask(leaving, title="Still open")
    resolved = await qna.ask(leaving, title="Already resolved")
    resolving_answer = await qna.answer(resolver, resolved["id"])
    saga = f"accept-{uuid.uuid4().hex[:8]}"
    for command in ("ReserveAcceptance", "ConfirmAcceptance"):
        reply = await qna.command(
            command,
            {
                "question_id": resolved["id"],
                "answer_id": resolving_answer["id"],
                "asker_id": str(leaving.id),
            },
            saga_id=saga,
        )
        assert reply.outcome == "SUCCESS", reply.reason
    others_question = await qna.ask(other, title="Someone else's")
    their_answer = await qna.answer(leaving, others_question["id"], "my answer")
    their_comment = await qna.comment(leaving, others_question["id"], "my comment")
    kept_answer = await qna.answer(other, others_question["id"], "not theirs")
    await qna.wait_listed(
        open_question["id"],
        "the nickname known",
        author={"id": str(leaving.id), "nickname": "leaver"},
    )

    async def snapshot() -> dict[str, Json]:
        return {
            q["id"]: await qna.detail(q["id"]) for q in (open_question, resolved, others_question)
        }

    before = await snapshot()
    withdrawal = f"withdraw-{uuid.uuid4().hex[:8]}"
    retired = await qna.command(
        "RetireAuthor", {"member_id": str(leaving.id)}, saga_id=withdrawal, step="retire-author"
    )
    assert retired.outcome == "SUCCESS", retired.reason

    after = await snapshot()
    assert after[open_question["id"]]["status"] == "CLOSED"
    assert after[open_question["id"]]["author"] == ANONYMOUS
    assert after[resolved["id"]]["status"] == "RESOLVED"  # only OPEN questions close
    assert after[resolved["id"]]["author"] == ANONYMOUS
    others = after[others_question["id"]]
    assert others["status"] == "OPEN"
    assert others["author"]["id"] == str(other.id)
    authors = {a["id"]: a["author"] for a in others["answers"]}
    assert authors[their_answer["id"]] == ANONYMOUS
    assert authors[kept_answer["id"]]["id"] == str(other.id)
    assert others["comments"][0]["id"] == their_comment["id"]
    assert others["comments"][0]["author"] == ANONYMOUS
    await qna.wait_listed(
        open_question["id"], "closed, anonymous", status="CLOSED", author=ANONYMOUS
    )
    await qna.wait_listed(resolved["id"], "anonymous", status="RESOLVED", author=ANONYMOUS)

    # the same command again changes nothing more; a retried attempt records nothing new
    duplicate = await qna.command(
        "RetireAuthor", {"member_id": str(leaving.id)}, saga_id=withdrawal, expect_replies=2
    )
    assert (duplicate.outcome, duplicate.result) == (retired.outcome, retired.result)
    retried = await qna.command(
        "RetireAuthor", {"member_id": str(leaving.id)}, saga_id=withdrawal, attempt=2
    )
    assert retried.outcome == "SUCCESS"
    assert await snapshot() == after

    restored = await qna.command(
        "RestoreAuthor",
        {"member_id": str(leaving.id)},
        saga_id=withdrawal,
        step="retire-author",
        compensates="RetireAuthor",
    )
    assert restored.outcome == "SUCCESS", restored.reason
    assert await snapshot() == before
    await qna.wait_listed(
        open_question["id"],
        "reopened with the author back",
        status="OPEN",
        author={"id": str(leaving.id), "nickname": "leaver"},
    )

    # the compensation again: nothing left to undo, still a success, still the same state
    again = await qna.command(
        "RestoreAuthor",
        {"member_id": str(leaving.id)},
        saga_id=withdrawal,
        compensates="RetireAuthor",
        attempt=2,
    )
    assert again.outcome == "SUCCESS"
    assert await snapshot() == before


async def test_restore_author_without_a_retirement_is_a_no_op(qna: QnaHarness) -> None:
    member = qna.member()
    question = await qna.ask(member)
    reply = await qna.command(
        "RestoreAuthor", {"member_id": str(member.id)}, compensates="RetireAuthor"
    )
    assert reply.outcome == "SUCCESS"
    assert reply.result["reopened_questions"] == 0
    assert (await qna.detail(question["id"]))["author"]["id"] == str(member.id)


async def test_retire_author_is_refused_while_a_question_is_accepting(qna: QnaHarness) -> None:
    leaving, answerer = qna.member(), qna.member()
    accepting = await qna.ask(leaving, title="Accepting")
    still_open = await qna.ask(leaving, title="Open")
    answer = await qna.answer(answerer, accepting["id"])
    reserved = await qna.command(
        "ReserveAcceptance",
        {"question_id": accepting["id"], "answer_id": answer["id"], "asker_id": str(leaving.id)},
    )
    assert reserved.outcome == "SUCCESS"

    withdrawal = f"withdraw-{uuid.uuid4().hex[:8]}"
    refused = await qna.command("RetireAuthor", {"member_id": str(leaving.id)}, saga_id=withdrawal)
    assert refused.outcome == "FAILURE"
    assert "ACCEPTING" in (refused.reason or "") or "accepting" in (refused.reason or "")
    # nothing changed at all: the refusal is all or nothing
    for question in (accepting, still_open):
        detail = await qna.detail(question["id"])
        assert detail["author"]["id"] == str(leaving.id)
    assert (await qna.detail(still_open["id"]))["status"] == "OPEN"
    assert (await qna.detail(accepting["id"]))["status"] == "ACCEPTING"

    # the saga compensates the steps before; qna's own compensation is then a no-op
    compensation = await qna.command(
        "RestoreAuthor",
        {"member_id": str(leaving.id)},
        saga_id=withdrawal,
        compensates="RetireAuthor",
    )
    assert compensation.outcome == "SUCCESS"
    assert (await qna.detail(still_open["id"]))["status"] == "OPEN"


async def test_retire_author_after_its_compensation_is_refused_without_effect(
    qna: QnaHarness,
) -> None:
    """RestoreAuthor ran first (RetireAuthor timed out): the late RetireAuthor must neither
    close the member's questions nor anonymize them."""
    member = qna.member()
    question = await qna.ask(member)
    withdrawal = f"withdraw-{uuid.uuid4().hex[:8]}"
    restored = await qna.command(
        "RestoreAuthor",
        {"member_id": str(member.id)},
        saga_id=withdrawal,
        compensates="RetireAuthor",
    )
    assert restored.outcome == "SUCCESS"

    late = await qna.command("RetireAuthor", {"member_id": str(member.id)}, saga_id=withdrawal)

    assert late.outcome == "FAILURE"
    assert late.reason == "a compensation of this saga was already applied"
    detail = await qna.detail(question["id"])
    assert detail["status"] == "OPEN"
    assert detail["author"]["id"] == str(member.id)
