"""Withdrawal closes the account everywhere, at once: every process real, every call through the gateway.

The kind: a withdrawn member keeps writing. Before, board and qna refused a member only from
their own saga step on (qna's is step 3), an access token issued before the withdrawal kept
working for its whole lifetime after COMPLETED, and a second DELETE after completion started a
new saga. docs/sagas.md: "From step 1 on, every write by the member in board and qna is refused with
403, and a second DELETE gets 409; CancelWithdrawal lifts that. Once the saga completes, the
member's access tokens are refused everywhere (401)."
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import pytest

from tests.system.saga.client import Member, SagaStackClient, eventually
from tests.system.saga.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack

pytestmark = pytest.mark.system

#: How long the tests wait for member's event to reach board and qna (measured: well under 1 s).
EVENT_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Targets:
    """Somebody else's post and question, for the member's comments and answers."""

    free_board: str
    post: str
    question: str


async def _targets(client: SagaStackClient, gateway: str) -> Targets:
    other = await client.sign_up()
    post = await client.write_post(other)
    question = await client.ask(other, bounty=0)
    boards = (await client.http.get(f"{gateway}/api/boards")).json()
    free = next(b["id"] for b in boards if b["slug"] == "free")
    return Targets(free, post, question)


async def _writes(http: httpx.AsyncClient, gateway: str, who: Member, t: Targets) -> dict[str, int]:
    """The status of each kind of write by ``who``, through the gateway."""
    calls = {
        "board post": ("POST", f"/api/boards/{t.free_board}/posts", {"title": "t", "content": "c"}),
        "board comment": ("POST", f"/api/posts/{t.post}/comments", {"content": "c"}),
        "qna question": ("POST", "/api/questions", {"title": "t", "content": "c", "bounty": 0}),
        "qna answer": ("POST", f"/api/questions/{t.question}/answers", {"content": "c"}),
        "qna comment": ("POST", f"/api/questions/{t.question}/comments", {"content": "c"}),
    }
    statuses = {}
    for name, (method, path, body) in calls.items():
        response = await http.request(method, f"{gateway}{path}", json=body, headers=who.headers)
        statuses[name] = response.status_code
    return statuses


async def _delete(http: httpx.AsyncClient, base: str, who: Member) -> httpx.Response:
    return await http.delete(f"{base}/api/members/me", headers=who.headers)


async def test_from_step_one_every_write_is_refused_and_a_second_delete_gets_409(
    client: SagaStackClient, stack: Stack
) -> None:
    """A withdrawn member keeps writing: with step 2 held (a delay fault on anonymize-author),
    board and qna already refuse every write of the member (403), learning of step 1 from
    MemberWithdrawalStarted; a second DELETE gets 409 and a profile change 409."""
    gateway, http = stack.gateway_url, client.http
    member = await client.sign_up()
    targets = await _targets(client, gateway)
    assert set((await _writes(http, gateway, member, targets)).values()) == {201}
    await client.set_fault("board", "anonymize-author", "delay", delay_ms=6000)

    started = await _delete(http, gateway, member)
    assert started.status_code == 202, started.text
    saga_id = started.json()["saga_id"]
    accepted_at = time.monotonic()
    await client.wait_step(saga_id, "start-withdrawal", "SUCCEEDED")

    async def all_refused() -> dict[str, int] | None:
        statuses = await _writes(http, gateway, member, targets)
        return statuses if set(statuses.values()) == {403} else None

    await eventually(all_refused, EVENT_WAIT_SECONDS, "writes refused from step 1")
    refused_after = time.monotonic() - accepted_at
    steps = {s["name"]: s["status"] for s in (await client.saga(saga_id))["steps"]}
    assert steps["anonymize-author"] == "RUNNING"  # step 2 has not run: the event did it
    print(f"\nwrites refused {refused_after:.2f}s after the 202 (step 2 still held)")

    again = await _delete(http, gateway, member)
    assert again.status_code == 409, again.text
    patched = await http.patch(
        f"{gateway}/api/members/me", json={"nickname": "new-name"}, headers=member.headers
    )
    assert patched.status_code == 409, patched.text

    await client.wait_saga(saga_id, "COMPLETED")


async def test_after_completion_the_old_token_is_refused_everywhere(
    client: SagaStackClient, stack: Stack
) -> None:
    """A withdrawn member keeps writing: after COMPLETED the access token issued before the
    withdrawal gets 401 at the gateway on every route that reads it, a second DELETE included;
    straight to the services (defence in depth) board and qna refuse writes with 403 and the
    saga service refuses a new withdrawal with 409, storing nothing."""
    gateway, http = stack.gateway_url, client.http
    member = await client.sign_up()
    targets = await _targets(client, gateway)
    saga_id = await client.withdraw(member)
    await client.wait_saga(saga_id, "COMPLETED")
    completed_at = time.monotonic()

    me = await http.get(f"{gateway}/api/members/me", headers=member.headers)
    revoked_after = time.monotonic() - completed_at
    assert me.status_code == 401, me.text
    assert "revoked" in me.json()["detail"]
    print(f"\ntoken refused at the gateway {revoked_after:.3f}s after COMPLETED was seen")
    statuses = await _writes(http, gateway, member, targets)
    assert set(statuses.values()) == {401}, statuses
    assert (await _delete(http, gateway, member)).status_code == 401
    # public reads with the revoked token: refused too, since board and qna would act on it
    listed = await http.get(f"{gateway}/api/questions", headers=member.headers)
    assert listed.status_code == 401
    # login ignores the header: a revoked token sent along does not lock anyone out
    login = await http.post(
        f"{gateway}/api/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers=member.headers,
    )
    assert login.status_code == 200, login.text

    direct_post = await http.post(
        f"{stack.url('board')}/api/boards/{targets.free_board}/posts",
        json={"title": "t", "content": "c"},
        headers=member.headers,
    )
    assert direct_post.status_code == 403, direct_post.text
    direct_question = await http.post(
        f"{stack.url('qna')}/api/questions",
        json={"title": "t", "content": "c", "bounty": 0},
        headers=member.headers,
    )
    assert direct_question.status_code == 403, direct_question.text
    direct_delete = await _delete(http, stack.url("saga"), member)
    assert direct_delete.status_code == 409, direct_delete.text


async def test_a_compensated_withdrawal_lifts_every_refusal(
    client: SagaStackClient, stack: Stack
) -> None:
    """A withdrawn member keeps writing, and the countermeasure must not outlive the saga:
    after a COMPENSATED withdrawal (retire-author fails) the member writes everywhere again
    (once MemberWithdrawalCancelled has arrived) and may withdraw again (202)."""
    gateway, http = stack.gateway_url, client.http
    member = await client.sign_up()
    targets = await _targets(client, gateway)
    await client.set_fault("qna", "retire-author", "fail")
    saga_id = await client.withdraw(member)
    await client.wait_saga(saga_id, "COMPENSATED")
    compensated_at = time.monotonic()
    await client.set_fault("qna", "retire-author", "off")

    async def all_allowed() -> dict[str, int] | None:
        statuses = await _writes(http, gateway, member, targets)
        return statuses if set(statuses.values()) == {201} else None

    await eventually(all_allowed, EVENT_WAIT_SECONDS, "writes allowed after compensation")
    print(f"\nwrites allowed {time.monotonic() - compensated_at:.2f}s after COMPENSATED was seen")
    me = await http.get(f"{gateway}/api/members/me", headers=member.headers)
    assert (me.status_code, me.json()["status"]) == (200, "ACTIVE")

    again = await _delete(http, gateway, member)
    assert again.status_code == 202, again.text
    await client.wait_saga(again.json()["saga_id"], "COMPLETED")
