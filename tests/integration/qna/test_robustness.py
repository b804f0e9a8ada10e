"""Bad input never answers 5xx, and the internal acceptance pre-check answers 200/403/404/409."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.qna.harness import QnaHarness

pytestmark = pytest.mark.integration

BAD_UUID = "not-a-uuid"


async def test_malformed_requests_never_answer_5xx(qna: QnaHarness) -> None:
    member = qna.member()
    question = await qna.ask(member)
    answer = await qna.answer(member, question["id"])
    comment = await qna.comment(member, question["id"])
    qid, aid, cid = question["id"], answer["id"], comment["id"]
    auth = member.headers
    json_auth = auth | {"Content-Type": "application/json"}
    long = "x" * 20_001

    cases: list[tuple[str, str, dict[str, str], Any, int]] = [
        # method, url, headers, body (str = raw bytes), expected status
        ("GET", "/api/questions?status=SOLVED", {}, None, 422),
        ("GET", "/api/questions?status=open", {}, None, 422),
        ("GET", "/api/questions?page=0", {}, None, 422),
        ("GET", "/api/questions?size=101", {}, None, 422),
        ("GET", "/api/questions?page=99999999999999999999", {}, None, 422),
        ("GET", "/api/questions?size=abc", {}, None, 422),
        ("GET", f"/api/questions?q={'q' * 201}", {}, None, 422),
        ("GET", "/api/questions?q=%00", {}, None, 422),
        ("GET", "/api/questions?author_id=nope", {}, None, 422),
        ("GET", f"/api/questions/{BAD_UUID}", {}, None, 422),
        ("GET", f"/api/questions/{qid}/comments?page=-1", {}, None, 422),
        ("POST", "/api/questions", {}, {"title": "t", "content": "c"}, 401),
        (
            "POST",
            "/api/questions",
            {"Authorization": "Bearer garbage"},
            {"title": "t", "content": "c"},
            401,
        ),
        (
            "POST",
            "/api/questions",
            {"Authorization": "Basic dXNlcjpwdw=="},
            {"title": "t", "content": "c"},
            401,
        ),
        ("POST", "/api/questions", json_auth, "{not json", 422),
        ("POST", "/api/questions", json_auth, "[]", 422),
        ("POST", "/api/questions", json_auth, '"a string"', 422),
        ("POST", "/api/questions", auth, {}, 422),
        ("POST", "/api/questions", auth, {"title": "", "content": "c"}, 422),
        ("POST", "/api/questions", auth, {"title": "   ", "content": "c"}, 422),
        ("POST", "/api/questions", auth, {"title": "t" * 201, "content": "c"}, 422),
        ("POST", "/api/questions", auth, {"title": "t", "content": long}, 422),
        ("POST", "/api/questions", auth, {"title": "nul\x00", "content": "c"}, 422),
        ("POST", "/api/questions", auth, {"title": "t", "content": "c", "bounty": -1}, 422),
        ("POST", "/api/questions", auth, {"title": "t", "content": "c", "bounty": 1001}, 422),
        ("POST", "/api/questions", auth, {"title": "t", "content": "c", "bounty": "5"}, 422),
        ("POST", "/api/questions", auth, {"title": "t", "content": "c", "bounty": 1.5}, 422),
        ("POST", "/api/questions", auth, {"title": "t", "content": "c", "bounty": 10**30}, 422),
        ("POST", "/api/questions", auth, {"title": 5, "content": "c"}, 422),
        ("POST", "/api/questions", auth, {"title": "t", "content": "c", "status": "RESOLVED"}, 422),
        (
            "POST",
            "/api/questions",
            auth | {"Idempotency-Key": "k" * 201},
            {"title": "t", "content": "c"},
            422,
        ),
        ("PATCH", f"/api/questions/{qid}", auth, {"title": None, "bounty": "x"}, 422),
        ("PATCH", f"/api/questions/{qid}", auth, {"title": ""}, 422),
        ("PATCH", f"/api/questions/{BAD_UUID}", auth, {"title": "t"}, 422),
        ("PATCH", f"/api/questions/{uuid.uuid4()}", auth, {"title": "t"}, 404),
        ("DELETE", f"/api/questions/{uuid.uuid4()}", auth, None, 404),
        ("POST", f"/api/questions/{uuid.uuid4()}/answers", auth, {"content": "a"}, 404),
        ("POST", f"/api/questions/{qid}/answers", auth, {"content": ""}, 422),
        ("POST", f"/api/questions/{qid}/answers", auth, {"content": long}, 422),
        ("POST", f"/api/questions/{qid}/answers", auth, {"text": "a"}, 422),
        ("PATCH", f"/api/questions/{qid}/answers/{BAD_UUID}", auth, {"content": "a"}, 422),
        ("PATCH", f"/api/questions/{qid}/answers/{uuid.uuid4()}", auth, {"content": "a"}, 404),
        ("PATCH", f"/api/questions/{uuid.uuid4()}/answers/{aid}", auth, {"content": "a"}, 404),
        ("DELETE", f"/api/questions/{qid}/answers/{uuid.uuid4()}", auth, None, 404),
        ("GET", f"/api/questions/{uuid.uuid4()}/comments", {}, None, 404),
        ("POST", f"/api/questions/{qid}/comments", auth, {"content": "c" * 2001}, 422),
        ("POST", f"/api/questions/{qid}/comments", auth, {"content": None}, 422),
        ("PATCH", f"/api/questions/{qid}/comments/{cid}", auth, {"content": ""}, 422),
        ("PATCH", f"/api/questions/{qid}/comments/{uuid.uuid4()}", auth, {"content": "c"}, 404),
        ("DELETE", f"/api/questions/{qid}/comments/{BAD_UUID}", auth, None, 422),
        ("GET", f"/internal/questions/{BAD_UUID}/answers/{aid}/acceptance-check", auth, None, 422),
        ("GET", f"/internal/questions/{qid}/answers/{aid}/acceptance-check", {}, None, 401),
        ("PUT", f"/api/questions/{qid}", auth, {"title": "t"}, 405),
    ]
    failures = []
    for method, url, headers, body, expected in cases:
        if isinstance(body, str):
            response = await qna.client.request(method, url, headers=headers, content=body)
        else:
            response = await qna.client.request(method, url, headers=headers, json=body)
        if response.status_code != expected:
            failures.append(
                f"{method} {url} {body!r}: {response.status_code} {response.text[:200]}"
            )
        assert response.status_code < 500, f"{method} {url}: {response.text}"
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
    assert failures == []

    # nothing stored was corrupted by all that
    detail = await qna.detail(qid)
    assert (detail["title"], detail["answer_count"], len(detail["comments"])) == ("How?", 1, 1)


async def test_acceptance_check(qna: QnaHarness) -> None:
    asker, answerer, stranger = qna.member(), qna.member(), qna.member()
    question = await qna.ask(asker, bounty=25)
    qid = question["id"]
    answer = await qna.answer(answerer, qid)
    own = await qna.answer(asker, qid, "my own")
    elsewhere = await qna.ask(stranger)
    foreign = await qna.answer(answerer, elsewhere["id"])

    def url(question_id: str, answer_id: str) -> str:
        return f"/internal/questions/{question_id}/answers/{answer_id}/acceptance-check"

    ok = await qna.client.get(url(qid, answer["id"]), headers=asker.headers)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "question_id": qid,
        "answer_id": answer["id"],
        "asker_id": str(asker.id),
        "answerer_id": str(answerer.id),
        "bounty": 25,
        "status": "OPEN",
    }
    assert (
        await qna.client.get(url(qid, answer["id"]), headers=stranger.headers)
    ).status_code == 403
    assert (
        await qna.client.get(url(qid, answer["id"]), headers=qna.admin().headers)
    ).status_code == 403
    assert (
        await qna.client.get(url(str(uuid.uuid4()), answer["id"]), headers=asker.headers)
    ).status_code == 404
    assert (
        await qna.client.get(url(qid, str(uuid.uuid4())), headers=asker.headers)
    ).status_code == 404
    assert (await qna.client.get(url(qid, own["id"]), headers=asker.headers)).status_code == 409
    assert (await qna.client.get(url(qid, foreign["id"]), headers=asker.headers)).status_code == 409

    reply = await qna.command(
        "RetireAuthor", {"member_id": str(stranger.id)}
    )  # closes the other question
    assert reply.outcome == "SUCCESS"
    assert (
        await qna.client.get(url(elsewhere["id"], foreign["id"]), headers=stranger.headers)
    ).status_code == 403

    reserved = await qna.command(
        "ReserveAcceptance",
        {"question_id": qid, "answer_id": answer["id"], "asker_id": str(asker.id)},
    )
    assert reserved.outcome == "SUCCESS"
    locked = await qna.client.get(url(qid, answer["id"]), headers=asker.headers)
    assert locked.status_code == 409
    assert locked.headers["content-type"].startswith("application/problem+json")
