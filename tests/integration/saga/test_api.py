"""The saga API in-process against real PostgreSQL and Redis (qna's pre-check is a fake of our port)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from chassis.auth import JwksVerifier
from chassis.faults import Fault, FaultFlags, FaultMode
from chassis.problems import Conflict, Forbidden, NotFound, Problem
from saga.bootstrap import build_api
from saga.config import Settings
from saga.qna import AcceptanceCheck
from tests.integration.saga.conftest import running
from tests.support.processes import free_port
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.integration


class FakeAcceptanceChecks:
    """qna's pre-check as a table: (question, answer) -> the check, or the refusal."""

    def __init__(self) -> None:
        self.outcomes: dict[tuple[uuid.UUID, uuid.UUID], AcceptanceCheck | Problem] = {}
        self.tokens: list[str] = []

    def allow(self, asker: uuid.UUID, bounty: int = 10) -> tuple[uuid.UUID, uuid.UUID]:
        question, answer = uuid.uuid4(), uuid.uuid4()
        self.outcomes[question, answer] = AcceptanceCheck(
            question_id=question,
            answer_id=answer,
            asker_id=asker,
            answerer_id=uuid.uuid4(),
            bounty=bounty,
            status="OPEN",
        )
        return question, answer

    def refuse(self, problem: Problem) -> tuple[uuid.UUID, uuid.UUID]:
        question, answer = uuid.uuid4(), uuid.uuid4()
        self.outcomes[question, answer] = problem
        return question, answer

    async def check(
        self, question_id: uuid.UUID, answer_id: uuid.UUID, bearer_token: str
    ) -> AcceptanceCheck:
        self.tokens.append(bearer_token)
        outcome = self.outcomes.get((question_id, answer_id)) or NotFound("no such answer")
        if isinstance(outcome, Problem):
            raise outcome
        return outcome


@pytest.fixture
def qna() -> FakeAcceptanceChecks:
    return FakeAcceptanceChecks()


async def client_for(
    settings: Settings, qna: FakeAcceptanceChecks, issuer: TokenIssuer
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api(settings, qna=qna)
    app.state.verifier = JwksVerifier(issuer.fetch, issuer="msa-member", audience="msa")
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c,
    ):
        yield c


@pytest.fixture
async def client(
    settings: Settings, qna: FakeAcceptanceChecks, issuer: TokenIssuer
) -> AsyncIterator[httpx.AsyncClient]:
    async for c in client_for(settings, qna, issuer):
        yield c


@pytest.fixture
async def faults(saga_redis: Redis) -> AsyncIterator[FaultFlags]:
    flags = FaultFlags(saga_redis, enabled=True)
    await flags.clear_all()
    yield flags
    await flags.clear_all()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_withdrawal_answers_202_with_the_saga_and_its_location(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    member = uuid.uuid4()
    response = await client.delete("/api/members/me", headers=issuer.headers(member))
    assert response.status_code == 202
    saga_id = response.json()["saga_id"]
    assert response.headers["location"] == f"/api/sagas/{saga_id}"

    shown = await client.get(response.headers["location"], headers=issuer.headers(member))
    assert shown.status_code == 200
    body = shown.json()
    assert body["id"] == saga_id
    assert body["type"] == "member-withdrawal"
    assert body["status"] == "RUNNING"
    assert body["steps"] == [
        {"name": "start-withdrawal", "status": "RUNNING", "kind": "compensatable", "retries": 0},
        {"name": "anonymize-author", "status": "PENDING", "kind": "compensatable", "retries": 0},
        {"name": "retire-author", "status": "PENDING", "kind": "compensatable", "retries": 0},
        {"name": "complete-withdrawal", "status": "PENDING", "kind": "pivot", "retries": 0},
    ]
    assert body["failure_reason"] is None
    assert body["ended_at"] is None
    assert set(body) == {
        "id",
        "type",
        "status",
        "steps",
        "failure_reason",
        "started_at",
        "ended_at",
    }


async def test_a_saga_is_shown_to_its_initiator_and_admins_only(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    member = uuid.uuid4()
    started = await client.delete("/api/members/me", headers=issuer.headers(member))
    location = started.headers["location"]
    assert (await client.get(location, headers=issuer.headers(role="ADMIN"))).status_code == 200
    problem(await client.get(location, headers=issuer.headers(uuid.uuid4())), 404)
    problem(await client.get(f"/api/sagas/{uuid.uuid4()}", headers=issuer.headers(member)), 404)
    problem(await client.get(location), 401)
    problem(await client.get("/api/sagas/not-a-uuid", headers=issuer.headers(member)), 422)


async def test_a_second_withdrawal_while_one_runs_is_a_conflict(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    headers = issuer.headers(uuid.uuid4())
    assert (await client.delete("/api/members/me", headers=headers)).status_code == 202
    problem(await client.delete("/api/members/me", headers=headers), 409)


async def test_concurrent_withdrawals_of_one_member_start_one_saga(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    headers = issuer.headers(uuid.uuid4())
    responses = await asyncio.gather(
        *(client.delete("/api/members/me", headers=headers) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [202, 409, 409, 409, 409]


async def test_an_idempotency_key_returns_the_first_saga_again(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    headers = {**issuer.headers(uuid.uuid4()), "Idempotency-Key": "withdraw-1"}
    first = await client.delete("/api/members/me", headers=headers)
    again = await client.delete("/api/members/me", headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    problem(await client.delete("/api/members/me", headers={**headers, "Idempotency-Key": ""}), 422)


async def test_accepting_an_answer_starts_the_saga_with_qnas_view(
    client: httpx.AsyncClient, issuer: TokenIssuer, qna: FakeAcceptanceChecks
) -> None:
    asker = uuid.uuid4()
    question, answer = qna.allow(asker, bounty=40)
    token = issuer.token(asker)
    response = await client.post(
        f"/api/questions/{question}/answers/{answer}/accept",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202
    assert qna.tokens == [token]  # the caller's token went to qna
    shown = await client.get(response.headers["location"], headers=issuer.headers(asker))
    assert shown.json()["type"] == "answer-acceptance"
    assert [s["status"] for s in shown.json()["steps"]] == ["RUNNING", "PENDING", "PENDING"]
    # a second accept of the same question while the first runs
    problem(
        await client.post(
            f"/api/questions/{question}/answers/{answer}/accept", headers=issuer.headers(asker)
        ),
        409,
    )


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        (Forbidden("only the asker may accept an answer"), 403),
        (Conflict("the question is not OPEN"), 409),
        (NotFound("no such answer"), 404),
    ],
)
async def test_an_invalid_acceptance_is_refused_before_any_saga_starts(
    client: httpx.AsyncClient,
    issuer: TokenIssuer,
    qna: FakeAcceptanceChecks,
    refusal: Problem,
    status: int,
) -> None:
    question, answer = qna.refuse(refusal)
    body = problem(
        await client.post(
            f"/api/questions/{question}/answers/{answer}/accept",
            headers={**issuer.headers(uuid.uuid4()), "Idempotency-Key": "k"},
        ),
        status,
    )
    assert body["detail"] == refusal.detail


async def test_an_idempotency_key_is_bound_to_its_answer(
    client: httpx.AsyncClient, issuer: TokenIssuer, qna: FakeAcceptanceChecks
) -> None:
    asker = uuid.uuid4()
    headers = {**issuer.headers(asker), "Idempotency-Key": "accept-1"}
    question, answer = qna.allow(asker)
    url = f"/api/questions/{question}/answers/{answer}/accept"
    first = await client.post(url, headers=headers)
    assert (await client.post(url, headers=headers)).json() == first.json()
    assert len(qna.tokens) == 1  # the retry did not ask qna again
    other_question, other_answer = qna.allow(asker)
    problem(
        await client.post(
            f"/api/questions/{other_question}/answers/{other_answer}/accept", headers=headers
        ),
        422,
    )


async def test_bad_ids_and_missing_tokens_are_refused_plainly(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    problem(
        await client.post(
            f"/api/questions/nope/answers/{uuid.uuid4()}/accept", headers=issuer.headers()
        ),
        422,
    )
    problem(await client.post(f"/api/questions/{uuid.uuid4()}/answers/{uuid.uuid4()}/accept"), 401)
    problem(await client.delete("/api/members/me"), 401)


async def test_an_admin_sets_and_clears_fault_flags(
    client: httpx.AsyncClient, issuer: TokenIssuer, faults: FaultFlags
) -> None:
    admin = issuer.headers(role="ADMIN")
    response = await client.put(
        "/api/admin/faults/qna/retire-author", json={"mode": "fail"}, headers=admin
    )
    assert response.status_code == 200
    assert response.json() == {
        "service": "qna",
        "command": "retire-author",
        "mode": "fail",
        "delay_ms": 0,
    }
    assert await faults.get("qna", "retire-author") == Fault(FaultMode.FAIL)
    await client.put(
        "/api/admin/faults/member/transfer-points",
        json={"mode": "delay", "delay_ms": 1500},
        headers=admin,
    )
    assert await faults.get("member", "transfer-points") == Fault(FaultMode.DELAY, 1500)
    listed = await client.get("/api/admin/faults", headers=admin)
    assert {(f["service"], f["command"], f["mode"]) for f in listed.json()["items"]} == {
        ("qna", "retire-author", "fail"),
        ("member", "transfer-points", "delay"),
    }
    # every command a flag can be set on, for an admin screen (additive field)
    offered = listed.json()["commands"]
    assert set(offered) == {"member", "board", "qna"}
    assert "transfer-points" in offered["member"]
    assert "retire-author" in offered["qna"]
    assert offered["board"] == sorted(offered["board"]) and "anonymize-author" in offered["board"]
    await client.put("/api/admin/faults/qna/retire-author", json={"mode": "off"}, headers=admin)
    assert await faults.get("qna", "retire-author") is None


async def test_fault_flags_are_validated_and_admin_only(
    client: httpx.AsyncClient, issuer: TokenIssuer, faults: FaultFlags
) -> None:
    admin = issuer.headers(role="ADMIN")
    url = "/api/admin/faults/board/anonymize-author"
    problem(await client.put(url, json={"mode": "fail"}, headers=issuer.headers()), 403)
    problem(await client.put(url, json={"mode": "fail"}), 401)
    problem(await client.put(url, json={"mode": "explode"}, headers=admin), 422)
    problem(await client.put(url, json={"mode": "delay"}, headers=admin), 422)
    problem(await client.put(url, json={"mode": "delay", "delay_ms": -1}, headers=admin), 422)
    problem(
        await client.put(
            "/api/admin/faults/board/retire-author", json={"mode": "fail"}, headers=admin
        ),
        422,
    )
    problem(
        await client.put("/api/admin/faults/gateway/x", json={"mode": "fail"}, headers=admin), 422
    )
    problem(await client.put(url, content=b"{not json", headers=admin), 422)
    assert await faults.get("board", "anonymize-author") is None


async def test_the_fault_api_is_absent_unless_fault_injection_is_on(
    settings: Settings, qna: FakeAcceptanceChecks, issuer: TokenIssuer, faults: FaultFlags
) -> None:
    disabled = settings.model_copy(update={"FAULT_INJECTION": False})
    async for client in client_for(disabled, qna, issuer):
        admin = issuer.headers(role="ADMIN")
        problem(
            await client.put(
                "/api/admin/faults/qna/retire-author", json={"mode": "fail"}, headers=admin
            ),
            404,
        )
        problem(await client.get("/api/admin/faults", headers=admin), 404)
    assert await faults.get("qna", "retire-author") is None


async def test_an_unreachable_qna_is_a_503_and_starts_nothing(
    settings: Settings, issuer: TokenIssuer
) -> None:
    nobody_listens = settings.model_copy(
        update={"QNA_URL": f"http://127.0.0.1:{free_port()}", "QNA_TIMEOUT_SECONDS": 1.0}
    )
    app = build_api(nobody_listens)  # the real HTTP pre-check client
    app.state.verifier = JwksVerifier(issuer.fetch, issuer="msa-member", audience="msa")
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c,
    ):
        body = problem(
            await c.post(
                f"/api/questions/{uuid.uuid4()}/answers/{uuid.uuid4()}/accept",
                headers=issuer.headers(),
            ),
            503,
        )
    assert "qna is unavailable" in body["detail"]
