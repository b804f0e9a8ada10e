"""qna over HTTP with the worker running: the write model, the read model it feeds, and the rules."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from chassis.db import inbox_table
from tests.integration.qna.harness import QnaHarness
from tests.support.infra import wait_for

pytestmark = pytest.mark.integration


async def test_ask_answer_and_comment_then_the_list_shows_the_counts(qna: QnaHarness) -> None:
    asker, answerer, commenter = qna.member(), qna.member(), qna.member()
    await qna.publish_member_event(
        "MemberRegistered", member_id=str(asker.id), nickname="asker", role="USER"
    )
    question = await qna.ask(asker, title="Why an outbox?", bounty=30)
    assert question["status"] == "OPEN"
    assert (question["bounty"], question["answer_count"], question["answers"]) == (30, 0, [])

    first = await qna.answer(answerer, question["id"], "Atomicity.")
    await qna.answer(commenter, question["id"], "No lost events.")
    comment = await qna.comment(commenter, question["id"], "Good question.")
    # the answerer's MemberRegistered never reached qna: known id, nickname not yet known
    assert first["author"] == {"id": str(answerer.id), "nickname": "알 수 없음"}
    assert first["accepted"] is False
    assert comment["content"] == "Good question."

    # the detail comes from the write model: the writes are visible at once
    detail = await qna.detail(question["id"])
    assert detail["answer_count"] == 2
    assert [a["content"] for a in detail["answers"]] == ["Atomicity.", "No lost events."]
    assert [c["id"] for c in detail["comments"]] == [comment["id"]]

    # the list comes from the read model, fed by the worker's projector
    item = await qna.wait_listed(
        question["id"],
        "two answers in the list",
        answer_count=2,
        author={"id": str(asker.id), "nickname": "asker"},
    )
    assert item["bounty"] == 30
    assert item["status"] == "OPEN"
    assert item["accepted_answer_id"] is None
    assert set(item) == {
        "id",
        "title",
        "author",
        "bounty",
        "status",
        "answer_count",
        "accepted_answer_id",
        "created_at",
    }

    # deleting an answer lowers the count again
    deleted = await qna.client.delete(
        f"/api/questions/{question['id']}/answers/{first['id']}", headers=answerer.headers
    )
    assert deleted.status_code == 204
    await qna.wait_listed(question["id"], "one answer left", answer_count=1)


async def test_filters_search_and_paging(qna: QnaHarness) -> None:
    alice, bob = qna.member(), qna.member()
    plain = await qna.ask(alice, title="Kafka partitions explained")
    wildcard = await qna.ask(bob, title="100% sure about under_score?")
    closed = await qna.ask(bob, title="Retired later")
    reply = await qna.command("RetireAuthor", {"member_id": str(bob.id)})
    assert reply.outcome == "SUCCESS", reply.reason
    await qna.wait_listed(closed["id"], "the closed question", status="CLOSED")
    await qna.wait_listed(wildcard["id"], "the other closed question", status="CLOSED")
    await qna.wait_listed(plain["id"], "the plain question")

    async def ids(**params: str) -> list[str]:
        response = await qna.client.get("/api/questions", params=params)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["items"]]

    assert await ids(q="kafka") == [plain["id"]]
    assert await ids(q="100%") == [wildcard["id"]]
    assert await ids(q="%") == [wildcard["id"]]  # a literal percent sign, not "anything"
    assert await ids(q="a_t") == []  # "_" is literal too (else it would match "partitions")
    assert await ids(q="' OR 1=1 --") == []
    assert set(await ids(status="CLOSED")) == {closed["id"], wildcard["id"]}
    assert await ids(status="OPEN") == [plain["id"]]
    assert await ids(author_id=str(alice.id)) == [plain["id"]]

    first_page = (await qna.client.get("/api/questions", params={"size": 2, "page": 1})).json()
    second_page = (await qna.client.get("/api/questions", params={"size": 2, "page": 2})).json()
    assert (first_page["total"], first_page["page"], first_page["size"]) == (3, 1, 2)
    assert len(first_page["items"]) == 2
    assert len(second_page["items"]) == 1
    assert first_page["items"][0]["id"] == closed["id"]  # newest first


async def test_ownership_and_states_over_http(qna: QnaHarness) -> None:
    asker, answerer, stranger, admin = qna.member(), qna.member(), qna.member(), qna.admin()
    question = await qna.ask(asker, title="Original")
    qid = question["id"]
    answer = await qna.answer(answerer, qid)
    comment = await qna.comment(answerer, qid)

    async def status_of(method: str, url: str, who: dict[str, str], json: object = None) -> int:
        response = await qna.client.request(method, url, headers=who, json=json)
        assert response.status_code < 500, response.text
        return response.status_code

    # writes need a token; others may not change what is not theirs
    assert await status_of("PATCH", f"/api/questions/{qid}", {}, {"title": "x"}) == 401
    assert (
        await status_of("PATCH", f"/api/questions/{qid}", stranger.headers, {"title": "x"}) == 403
    )
    assert await status_of("DELETE", f"/api/questions/{qid}", answerer.headers) == 403
    answer_url = f"/api/questions/{qid}/answers/{answer['id']}"
    assert await status_of("PATCH", answer_url, asker.headers, {"content": "x"}) == 403
    comment_url = f"/api/questions/{qid}/comments/{comment['id']}"
    assert await status_of("DELETE", comment_url, stranger.headers) == 403

    # the author and an admin may
    edited = await qna.client.patch(
        f"/api/questions/{qid}", headers=asker.headers, json={"title": "Edited", "bounty": 5}
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["title"], edited.json()["bounty"]) == ("Edited", 5)
    assert await status_of("PATCH", answer_url, admin.headers, {"content": "moderated"}) == 200
    assert await status_of("PATCH", comment_url, answerer.headers, {"content": "edited"}) == 200
    await qna.wait_listed(qid, "the edited title", title="Edited", bounty=5)

    # while ACCEPTING (semantic lock): no edit, no delete, no second acceptance, no new answer
    reply = await qna.command(
        "ReserveAcceptance",
        {"question_id": qid, "answer_id": answer["id"], "asker_id": str(asker.id)},
    )
    assert reply.outcome == "SUCCESS", reply.reason
    assert await status_of("PATCH", f"/api/questions/{qid}", asker.headers, {"title": "y"}) == 409
    assert await status_of("DELETE", f"/api/questions/{qid}", admin.headers) == 409
    assert await status_of("PATCH", answer_url, answerer.headers, {"content": "y"}) == 409
    assert await status_of("DELETE", answer_url, admin.headers) == 409
    assert (
        await status_of(
            "POST", f"/api/questions/{qid}/answers", stranger.headers, {"content": "late"}
        )
        == 409
    )
    check_url = f"/internal/questions/{qid}/answers/{answer['id']}/acceptance-check"
    assert await status_of("GET", check_url, asker.headers) == 409
    # comments are not part of the lock
    assert await status_of("PATCH", comment_url, admin.headers, {"content": "still fine"}) == 200

    # a saga that does not hold the lock cannot confirm
    confirm = await qna.command(
        "ConfirmAcceptance", {"question_id": qid, "answer_id": answer["id"]}
    )
    assert confirm.outcome == "FAILURE"
    assert (await qna.detail(qid))["status"] == "ACCEPTING"


async def test_idempotency_key_returns_the_first_result(qna: QnaHarness) -> None:
    asker = qna.member()
    headers = asker.headers | {"Idempotency-Key": "ask-once"}
    body = {"title": "Only once", "content": "Please."}
    first = await qna.client.post("/api/questions", json=body, headers=headers)
    again = await qna.client.post("/api/questions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    different = await qna.client.post(
        "/api/questions", json={**body, "title": "Changed"}, headers=headers
    )
    assert different.status_code == 422
    # another member's identical key is their own
    other = await qna.client.post(
        "/api/questions", json=body, headers=qna.member().headers | {"Idempotency-Key": "ask-once"}
    )
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]

    async def listed_twice() -> bool:
        response = await qna.client.get("/api/questions", params={"q": "Only once"})
        return bool(response.json()["total"] == 2)

    await wait_for(listed_twice, message="exactly two questions")

    qid = first.json()["id"]
    answer_headers = qna.member().headers | {"Idempotency-Key": "answer-once"}
    answers = [
        await qna.client.post(
            f"/api/questions/{qid}/answers", json={"content": "once"}, headers=answer_headers
        )
        for _ in range(2)
    ]
    assert answers[0].json() == answers[1].json()
    assert (await qna.detail(qid))["answer_count"] == 1


async def test_delete_question_and_withdrawn_members(qna: QnaHarness) -> None:
    asker, answerer, gone = qna.member(), qna.member(), qna.member()
    question = await qna.ask(asker)
    qid = question["id"]
    await qna.answer(answerer, qid)
    await qna.wait_listed(qid, "the answered question", answer_count=1)

    # a member known to have withdrawn (member.events) can no longer write
    await qna.publish_member_event("MemberWithdrawn", member_id=str(gone.id))

    async def known_withdrawn() -> bool:
        return await qna.author_withdrawn(gone.id)

    await wait_for(known_withdrawn, message="the local author copy to learn the withdrawal")
    refused = await qna.client.post(
        f"/api/questions/{qid}/answers", json={"content": "hi"}, headers=gone.headers
    )
    assert refused.status_code == 403, refused.text

    deleted = await qna.client.delete(f"/api/questions/{qid}", headers=asker.headers)
    assert deleted.status_code == 204
    assert (await qna.client.get(f"/api/questions/{qid}")).status_code == 404
    assert (await qna.client.get(f"/api/questions/{qid}/comments")).status_code == 404

    async def unlisted() -> bool:
        return await qna.listed(qid) is None

    await wait_for(unlisted, message="the deleted question gone from the list")
    missing = uuid.uuid4()
    assert (await qna.client.get(f"/api/questions/{missing}")).status_code == 404


async def test_an_older_nickname_replayed_after_a_newer_one_changes_nothing(
    qna: QnaHarness,
) -> None:
    asker = qna.member()
    key = str(asker.id)
    await qna.publish_member_event(
        "MemberRegistered", member_id=key, nickname="첫이름", profile_version=1
    )
    question = await qna.ask(asker, title="별명 순서")
    await qna.publish_member_event(
        "MemberProfileChanged", member_id=key, nickname="새이름", profile_version=3
    )

    async def shown(nickname: str) -> bool:
        item = await qna.listed(question["id"])
        detail = await qna.detail(question["id"])
        return (
            item is not None
            and item["author"]["nickname"] == nickname
            and detail["author"]["nickname"] == nickname
        )

    await wait_for(lambda: shown("새이름"), timeout=20, message="the newest nickname")

    # an operator replays an old MemberProfileChanged from the DLQ (a new delivery, old content)
    stale = await qna.publish_member_event(
        "MemberProfileChanged", member_id=key, nickname="옛이름", profile_version=2
    )

    async def consumed_by_both() -> bool:
        async with qna.engine.connect() as conn:
            consumers = await conn.scalars(
                select(inbox_table.c.consumer).where(inbox_table.c.message_id == stale)
            )
            return len(set(consumers)) == 2  # the author copy and the read model

    await wait_for(consumed_by_both, timeout=20, message="the stale event to be consumed")
    assert await shown("새이름")

    await qna.publish_member_event(
        "MemberProfileChanged", member_id=key, nickname="최신이름", profile_version=4
    )
    await wait_for(lambda: shown("최신이름"), timeout=20, message="the next nickname")
