"""The pre-check adapter: qna's answer is relayed (403/404/409), its 500 stays a 500, anything else is a 503."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from chassis.problems import Problem, ServiceUnavailable, Unauthorized
from saga.qna import HttpAcceptanceChecks

Q, A = uuid.uuid4(), uuid.uuid4()
OK = {
    "question_id": str(Q),
    "answer_id": str(A),
    "asker_id": str(uuid.uuid4()),
    "answerer_id": str(uuid.uuid4()),
    "bounty": 25,
    "status": "OPEN",
}


def checks(handler: Callable[[httpx.Request], httpx.Response]) -> HttpAcceptanceChecks:
    return HttpAcceptanceChecks(
        httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://qna")
    )


async def test_the_callers_token_goes_to_the_internal_endpoint() -> None:
    seen: list[httpx.Request] = []

    def qna(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OK)

    check = await checks(qna).check(Q, A, "tok")
    assert check.bounty == 25
    assert seen[0].url.path == f"/internal/questions/{Q}/answers/{A}/acceptance-check"
    assert seen[0].headers["authorization"] == "Bearer tok"


@pytest.mark.parametrize("status", [403, 404, 409])
async def test_a_refusal_is_relayed_with_qnas_detail(status: int) -> None:
    def qna(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"status": status, "detail": "why not"})

    with pytest.raises(Problem) as raised:
        await checks(qna).check(Q, A, "tok")
    assert (raised.value.status, raised.value.detail) == (status, "why not")


async def test_a_401_stays_a_401() -> None:
    with pytest.raises(Unauthorized):
        await checks(lambda _: httpx.Response(401, text="no")).check(Q, A, "tok")


@pytest.mark.parametrize("status", [500, 501])
async def test_an_error_on_this_request_stays_a_500_and_is_not_an_outage(status: int) -> None:
    """Kind: one client's requests degrade another's. A 503 here would count as the saga
    service being down at the gateway's breaker, which a repeated request could open."""

    def qna(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": "boom"})

    with pytest.raises(Problem) as raised:
        await checks(qna).check(Q, A, "tok")
    assert raised.value.status == 500
    assert not isinstance(raised.value, ServiceUnavailable)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(502),
        httpx.Response(503),
        httpx.Response(504),
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(200, text="not json"),
    ],
)
async def test_anything_else_is_a_503(answer: httpx.Response) -> None:
    with pytest.raises(ServiceUnavailable):
        await checks(lambda _: answer).check(Q, A, "tok")


async def test_an_unreachable_qna_is_a_503() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ServiceUnavailable):
        await checks(down).check(Q, A, "tok")
