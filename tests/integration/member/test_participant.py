"""Saga participant against real PostgreSQL: idempotent commands, refusals, replies in the outbox."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from redis.exceptions import RedisError
from sqlalchemy import select

from chassis.db import create_engine, create_session_factory, outbox_table
from chassis.messaging.envelope import Envelope
from chassis.messaging.failures import Failure, classify
from chassis.redis import create_redis
from chassis.saga import SagaCommand, SagaParticipant
from chassis.token_denylist import TokenDenyList, deny_key, entry_ttl
from member.adapters.tables import members
from member.config import Settings
from member.entrypoints.saga_handlers import build_handlers
from member.service_layer.unit_of_work import MemberUnitOfWork
from tests.integration.member.helpers import PASSWORD, log_in, sign_up

pytestmark = pytest.mark.integration


class Harness:
    """Delivers commands the way the consumer would, and reads what the service staged."""

    def __init__(self, settings: Settings, *, redis_url: str | None = None) -> None:
        self.engine = create_engine(settings.DATABASE_URL, pool_size=2)
        sessions = create_session_factory(self.engine)
        self.redis = create_redis(redis_url or settings.REDIS_URL)
        self.access_ttl = settings.ACCESS_TOKEN_TTL_SECONDS
        self.deny_list = TokenDenyList(
            self.redis, ttl_seconds=entry_ttl(settings.ACCESS_TOKEN_TTL_SECONDS)
        )
        self.participant = SagaParticipant(
            "member", lambda: MemberUnitOfWork(sessions, "member"), build_handlers(self.deny_list)
        )

    async def aclose(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()

    async def send(
        self,
        command: str,
        payload: dict[str, Any],
        *,
        saga_id: str,
        attempt: int = 1,
        compensates: str | None = None,
    ) -> None:
        body = SagaCommand(
            saga_id=saga_id,
            saga_type="test",
            step=command,
            command=command,
            attempt=attempt,
            compensates=compensates,
            payload=payload,
        )
        await self.participant.handle(
            Envelope.new(command, "saga", body.model_dump(mode="json"), key=saga_id)
        )

    async def staged(self, topic: str) -> list[tuple[str, dict[str, Any]]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(outbox_table.c.type, outbox_table.c.payload)
                .where(outbox_table.c.topic == topic)
                .order_by(outbox_table.c.seq)
            )
            return [(r.type, r.payload) for r in rows]

    async def replies(self, saga_id: str) -> list[dict[str, Any]]:
        return [p for (_, p) in await self.staged("saga.replies") if p["saga_id"] == saga_id]


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    h = Harness(settings)
    yield h
    await h.aclose()


async def points(client: httpx.AsyncClient, email: str) -> int:
    tokens = await log_in(client, email)
    response = await client.get(
        "/api/members/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    value: int = response.json()["points"]
    return value


async def test_duplicate_transfer_moves_points_once(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    asker, answerer = await sign_up(client), await sign_up(client)
    saga = str(uuid.uuid4())
    payload = {
        "from_member_id": asker["id"],
        "to_member_id": answerer["id"],
        "amount": 40,
        "question_id": str(uuid.uuid4()),
    }

    await harness.send("TransferPoints", payload, saga_id=saga)
    await harness.send("TransferPoints", payload, saga_id=saga)  # redelivered
    await harness.send("TransferPoints", payload, saga_id=saga, attempt=2)  # retried by the saga

    assert await points(client, asker["email"]) == 60
    assert await points(client, answerer["email"]) == 140
    replies = await harness.replies(saga)
    assert [r["outcome"] for r in replies] == ["SUCCESS"] * 3
    assert replies[0] == replies[1]
    transfers = [p for (t, p) in await harness.staged("member.events") if t == "PointsTransferred"]
    assert len(transfers) == 1
    assert transfers[0] | {"occurred_at": None} == {
        "saga_id": saga,
        **payload,
        "occurred_at": None,
    }


async def test_transfer_beyond_the_balance_fails_and_refund_is_a_noop(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    asker, answerer = await sign_up(client), await sign_up(client)
    saga = str(uuid.uuid4())
    payload = {
        "from_member_id": asker["id"],
        "to_member_id": answerer["id"],
        "amount": 101,
        "question_id": str(uuid.uuid4()),
    }

    await harness.send("TransferPoints", payload, saga_id=saga)
    await harness.send("RefundPoints", payload, saga_id=saga, compensates="TransferPoints")

    [failure, refund] = await harness.replies(saga)
    assert failure["outcome"] == "FAILURE"
    assert "100 points" in failure["reason"]
    assert refund["outcome"] == "SUCCESS"
    assert refund["result"]["refunded"] == 0
    assert await points(client, asker["email"]) == 100
    assert await points(client, answerer["email"]) == 100


async def test_refund_undoes_the_transfer_once(client: httpx.AsyncClient, harness: Harness) -> None:
    asker, answerer = await sign_up(client), await sign_up(client)
    saga = str(uuid.uuid4())
    payload = {
        "from_member_id": asker["id"],
        "to_member_id": answerer["id"],
        "amount": 25,
        "question_id": str(uuid.uuid4()),
    }
    await harness.send("TransferPoints", payload, saga_id=saga)
    await harness.send("RefundPoints", payload, saga_id=saga, compensates="TransferPoints")
    await harness.send(
        "RefundPoints", payload, saga_id=saga, compensates="TransferPoints", attempt=2
    )
    # a forward command arriving after its compensation must not move points again
    await harness.send("TransferPoints", payload, saga_id=saga, attempt=3)

    assert await points(client, asker["email"]) == 100
    assert await points(client, answerer["email"]) == 100
    outcomes = [(r["command"], r["outcome"]) for r in await harness.replies(saga)]
    assert outcomes == [
        ("TransferPoints", "SUCCESS"),
        ("RefundPoints", "SUCCESS"),
        ("RefundPoints", "SUCCESS"),
        ("TransferPoints", "FAILURE"),
    ]
    types = [t for (t, _) in await harness.staged("member.events")]
    assert types.count("PointsRefunded") == 1


async def test_transfer_refusals(client: httpx.AsyncClient, harness: Harness) -> None:
    asker, answerer = await sign_up(client), await sign_up(client)
    base = {
        "from_member_id": asker["id"],
        "to_member_id": answerer["id"],
        "amount": 10,
        "question_id": "q-1",
    }
    cases = {
        "negative": {**base, "amount": -5},
        "not an integer": {**base, "amount": "10"},
        "a boolean": {**base, "amount": True},
        "empty question": {**base, "question_id": ""},
        "missing answerer": {**base, "to_member_id": str(uuid.uuid4())},
        "bad uuid": {**base, "from_member_id": "nope"},
        "missing field": {k: v for k, v in base.items() if k != "question_id"},
        "self": {**base, "to_member_id": asker["id"]},
    }
    for name, payload in cases.items():
        saga = f"saga-{name}"
        await harness.send("TransferPoints", payload, saga_id=saga)
        [reply] = await harness.replies(saga)
        assert reply["outcome"] == "FAILURE", name
    [unreadable] = await harness.replies("saga-a boolean")
    assert unreadable["reason"].startswith("malformed TransferPoints payload: amount:")
    await harness.send("StartWithdrawal", {"member_id": answerer["id"]}, saga_id="w-1")
    await harness.send("TransferPoints", base, saga_id="to-withdrawing")
    [reply] = await harness.replies("to-withdrawing")
    assert reply["outcome"] == "FAILURE"
    assert "WITHDRAWING" in reply["reason"]
    await harness.send("TransferPoints", {**base, "amount": 0}, saga_id="zero")
    [zero] = await harness.replies("zero")
    assert zero["outcome"] == "SUCCESS"
    assert await points(client, asker["email"]) == 100


async def test_withdrawal_commands(client: httpx.AsyncClient, harness: Harness) -> None:
    member = await sign_up(client)
    pair = await log_in(client, member["email"])
    saga = str(uuid.uuid4())
    target = {"member_id": member["id"]}

    await harness.send("StartWithdrawal", target, saga_id=saga)
    await harness.send("StartWithdrawal", target, saga_id=saga)
    await harness.send("StartWithdrawal", target, saga_id="another-saga")
    login = await client.post(
        "/api/auth/login", json={"email": member["email"], "password": PASSWORD}
    )
    assert login.status_code == 403
    await harness.send("CompleteWithdrawal", target, saga_id=saga)
    await harness.send("CompleteWithdrawal", target, saga_id=saga, attempt=2)

    outcomes = [r["outcome"] for r in await harness.replies(saga)]
    assert outcomes == ["SUCCESS"] * 4
    [refused] = await harness.replies("another-saga")
    assert refused["outcome"] == "FAILURE"
    refresh = await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refresh.status_code == 401
    gone = await client.post(
        "/api/auth/login", json={"email": member["email"], "password": PASSWORD}
    )
    assert gone.status_code == 401
    async with harness.engine.connect() as conn:
        row = (await conn.execute(select(members).where(members.c.id == member["id"]))).one()
    assert row.status == "WITHDRAWN"
    assert row.email == f"withdrawn+{uuid.UUID(member['id']).hex}@invalid"
    assert row.nickname != member["nickname"]
    assert row.password_hash is None
    withdrawn = [p for (t, p) in await harness.staged("member.events") if t == "MemberWithdrawn"]
    assert [w["member_id"] for w in withdrawn] == [member["id"]]
    # the erased email is free again
    await sign_up(client, email=member["email"], nickname=member["nickname"])


async def test_cancel_withdrawal_restores_access(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    member = await sign_up(client)
    saga = str(uuid.uuid4())
    target = {"member_id": member["id"]}

    await harness.send("CancelWithdrawal", target, saga_id="never-started", compensates="x")
    await harness.send("StartWithdrawal", target, saga_id=saga)
    await harness.send("CancelWithdrawal", target, saga_id=saga, compensates="StartWithdrawal")

    assert [r["outcome"] for r in await harness.replies("never-started")] == ["SUCCESS"]
    await log_in(client, member["email"])
    await harness.send("StartWithdrawal", {"member_id": str(uuid.uuid4())}, saga_id="ghost")
    [ghost] = await harness.replies("ghost")
    assert ghost["outcome"] == "FAILURE"


async def test_withdrawal_commands_after_cancel_withdrawal_are_refused_without_effect(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    """A step timeout before the pivot compensates first; the slow StartWithdrawal, and any
    later forward command of that saga (CompleteWithdrawal), must then change nothing."""
    member = await sign_up(client)
    saga = str(uuid.uuid4())
    by_member = {"member_id": member["id"]}
    await harness.send("CancelWithdrawal", by_member, saga_id=saga, compensates="StartWithdrawal")
    await harness.send("StartWithdrawal", by_member, saga_id=saga)
    await harness.send("CompleteWithdrawal", by_member, saga_id=saga)

    outcomes = [(r["command"], r["outcome"]) for r in await harness.replies(saga)]
    assert outcomes == [
        ("CancelWithdrawal", "SUCCESS"),
        ("StartWithdrawal", "FAILURE"),
        ("CompleteWithdrawal", "FAILURE"),
    ]
    tokens = await log_in(client, member["email"])  # still ACTIVE: logins work
    me = await client.get(
        "/api/members/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert (me.json()["status"], me.json()["email"]) == ("ACTIVE", member["email"])
    events = await harness.staged("member.events")
    assert [t for (t, p) in events if p.get("member_id") == member["id"]] == ["MemberRegistered"]


async def test_withdrawal_events_and_the_token_deny_list(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    """A withdrawn member keeps writing: board and qna learn of step 1 from
    MemberWithdrawalStarted (and of its undo from MemberWithdrawalCancelled), staged in the
    outbox with the state change, keyed by the member so the three events stay in order; the
    pivot puts the member on the token deny-list before its reply is committed."""
    member = await sign_up(client)
    token = (await log_in(client, member["email"]))["access_token"]
    target = {"member_id": member["id"]}
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    await harness.send("StartWithdrawal", target, saga_id=first)
    await harness.send("CancelWithdrawal", target, saga_id=first, compensates="StartWithdrawal")
    await harness.send("StartWithdrawal", target, saga_id=second)
    assert await harness.redis.get(deny_key(uuid.UUID(member["id"]))) is None
    await harness.send("CompleteWithdrawal", target, saga_id=second)

    async with harness.engine.connect() as conn:
        rows = await conn.execute(
            select(outbox_table.c.type, outbox_table.c.key, outbox_table.c.payload)
            .where(outbox_table.c.topic == "member.events")
            .where(outbox_table.c.key == member["id"])
            .order_by(outbox_table.c.seq)
        )
        events = [(r.type, r.payload.get("saga_id")) for r in rows]
    assert events == [
        ("MemberRegistered", None),
        ("MemberWithdrawalStarted", first),
        ("MemberWithdrawalCancelled", first),
        ("MemberWithdrawalStarted", second),
        ("MemberWithdrawn", None),
    ]
    key = deny_key(uuid.UUID(member["id"]))
    denied_since = await harness.deny_list.denied_since(uuid.UUID(member["id"]))
    assert denied_since is not None
    issued_at = int(jwt.decode(token, options={"verify_signature": False})["iat"])
    assert issued_at <= denied_since
    ttl = await harness.redis.ttl(key)
    assert entry_ttl(harness.access_ttl) - 5 <= ttl <= entry_ttl(harness.access_ttl)


async def test_the_pivot_waits_out_a_redis_outage(
    client: httpx.AsyncClient, settings: Settings, harness: Harness
) -> None:
    """COMPLETED implies a deny-list entry: with Redis unreachable, CompleteWithdrawal is a
    transient failure (the consumer retries it) and neither the member's state nor a reply is
    committed; once Redis answers, the same command completes."""
    member = await sign_up(client)
    target = {"member_id": member["id"]}
    saga = str(uuid.uuid4())
    await harness.send("StartWithdrawal", target, saga_id=saga)

    with socket.socket() as probe:  # a port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    cut_off = Harness(settings, redis_url=f"redis://127.0.0.1:{closed_port}/0")
    try:
        with pytest.raises(RedisError) as raised:
            await cut_off.send("CompleteWithdrawal", target, saga_id=saga)
        assert classify(raised.value) is Failure.TRANSIENT
    finally:
        await cut_off.aclose()
    async with harness.engine.connect() as conn:
        status = await conn.scalar(select(members.c.status).where(members.c.id == member["id"]))
    assert status == "WITHDRAWING"
    assert [r["command"] for r in await harness.replies(saga)] == ["StartWithdrawal"]

    await harness.send("CompleteWithdrawal", target, saga_id=saga)
    assert [r["outcome"] for r in await harness.replies(saga)] == ["SUCCESS", "SUCCESS"]
    assert await harness.redis.get(deny_key(uuid.UUID(member["id"]))) is not None
