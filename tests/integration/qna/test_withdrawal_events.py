"""Semantic lock from step 1: member's withdrawal events and qna's own saga step, in every order.

The kind: a withdrawn (or withdrawing) member keeps writing. qna refused a member's writes only
from its own step (RetireAuthor, step 3) on, so from step 1 to step 3 the member could still
ask, answer and comment. Now ``MemberWithdrawalStarted`` marks the member too and
``MemberWithdrawalCancelled`` lifts it; these arrive on ``member.events`` in no fixed order with
the saga's commands on ``saga.qna.commands``, and every order must end right.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from chassis import author_lock
from chassis.db import create_session_factory
from qna.adapters import tables
from qna.service_layer import handlers, saga_steps
from qna.service_layer.unit_of_work import QnaUnitOfWork
from tests.integration.qna.harness import QnaHarness
from tests.support.infra import wait_for
from tests.support.withdrawal_orders import CASES, linear_extensions, must_refuse

pytestmark = pytest.mark.integration

Apply = Callable[[async_sessionmaker[Any], uuid.UUID], Awaitable[Any]]


def _in_step(step: Callable[[QnaUnitOfWork, str, uuid.UUID], Awaitable[Any]], saga: str) -> Apply:
    async def apply(sessions: async_sessionmaker[Any], member: uuid.UUID) -> None:
        async with QnaUnitOfWork(sessions) as uow:  # as the saga participant runs it
            await step(uow, saga, member)
            await uow.commit()

    return apply


def withdrawal_messages(first: str, second: str) -> dict[str, Apply]:
    """What qna receives of two withdrawal sagas of one member (see withdrawal_orders)."""

    def event(name: str, saga: str | None) -> Apply:
        async def apply(sessions: async_sessionmaker[Any], member: uuid.UUID) -> None:
            uow, message = QnaUnitOfWork(sessions), str(uuid.uuid4())
            if name == "started":
                await handlers.note_withdrawal_started(uow, message, member, str(saga))
            elif name == "cancelled":
                await handlers.note_withdrawal_cancelled(uow, message, member, str(saga))
            else:
                await handlers.note_withdrawal(uow, message, member)

        return apply

    return {
        "started-1": event("started", first),
        "step-1": _in_step(saga_steps.retire_author, first),
        "restore-1": _in_step(saga_steps.restore_author, first),
        "cancelled-1": event("cancelled", first),
        "started-2": event("started", second),
        "step-2": _in_step(saga_steps.retire_author, second),
        "restore-2": _in_step(saga_steps.restore_author, second),
        "cancelled-2": event("cancelled", second),
        "withdrawn": event("withdrawn", None),
    }


async def _refused(sessions: async_sessionmaker[Any], member: uuid.UUID) -> str | None:
    """The refusal a write by ``member`` gets now, or None when it is allowed."""
    async with sessions() as session, session.begin():
        try:
            await author_lock.hold_for_write(session, tables.authors, member)
        except author_lock.AuthorWithdrawing as exc:
            return str(exc)
    return None


@pytest.mark.parametrize(("items", "final"), CASES.values(), ids=CASES.keys())
async def test_every_order_of_events_and_steps_ends_right(
    qna: QnaHarness, items: list[str], final: str | None
) -> None:
    """A withdrawn member keeps writing: for every order the sagas allow, once a message of the
    running saga has been applied the member stays refused (no late event of the first saga
    lifts the second one's mark), and the end state is right."""
    sessions = create_session_factory(qna.engine)
    orders = list(linear_extensions(items))
    assert len(orders) >= 10
    messages = withdrawal_messages(str(uuid.uuid4()), str(uuid.uuid4()))
    for order in orders:
        member = uuid.uuid4()
        for step, name in enumerate(order):
            await messages[name](sessions, member)
            if must_refuse(order[: step + 1]):
                assert await _refused(sessions, member) is not None, (order, name)
        assert await _refused(sessions, member) == final, order


async def test_member_events_refuse_and_lift_through_the_worker(qna: QnaHarness) -> None:
    """A withdrawn member keeps writing: end to end over Kafka, MemberWithdrawalStarted alone
    (no RetireAuthor yet) refuses the member's question, answer and comment with 403,
    MemberWithdrawalCancelled lets them write again, and MemberWithdrawn refuses for good."""
    leaving, other = qna.member(), qna.member()
    others = await qna.ask(other, title="Someone else's")
    saga = str(uuid.uuid4())

    async def statuses() -> list[int]:
        asked = await qna.client.post(
            "/api/questions",
            json={"title": "Late", "content": "Asked while leaving.", "bounty": 0},
            headers=leaving.headers,
        )
        codes = [asked.status_code]
        for path in ("answers", "comments"):
            response = await qna.client.post(
                f"/api/questions/{others['id']}/{path}",
                json={"content": "late"},
                headers=leaving.headers,
            )
            codes.append(response.status_code)
        return codes

    async def refused() -> bool:
        return await statuses() == [403, 403, 403]

    await qna.publish_member_event(
        "MemberWithdrawalStarted", member_id=str(leaving.id), saga_id=saga
    )
    await wait_for(refused, timeout=20, message="MemberWithdrawalStarted did not refuse")

    await qna.publish_member_event(
        "MemberWithdrawalCancelled", member_id=str(leaving.id), saga_id=saga
    )

    async def allowed() -> bool:
        return await statuses() == [201, 201, 201]

    await wait_for(allowed, timeout=20, message="MemberWithdrawalCancelled did not lift it")

    await qna.publish_member_event("MemberWithdrawn", member_id=str(leaving.id))
    await wait_for(refused, timeout=20, message="MemberWithdrawn did not refuse")


async def test_a_withdrawn_members_nickname_is_erased_and_stays_erased(qna: QnaHarness) -> None:
    """A withdrawn member's nickname outlives the withdrawal in qna's copy: MemberWithdrawn
    erases it, and a nickname event that comes later (a newer profile version, as a replay from
    a dead-letter topic may bring) does not write it back; the member stays refused."""
    sessions = create_session_factory(qna.engine)
    member, a = uuid.uuid4(), tables.authors

    async def copied() -> tuple[str | None, int, bool]:
        async with sessions() as session:
            row = (
                await session.execute(
                    select(a.c.nickname, a.c.profile_version, a.c.withdrawn).where(
                        a.c.member_id == member
                    )
                )
            ).one()
        return row.nickname, row.profile_version, row.withdrawn

    def message() -> str:
        return str(uuid.uuid4())

    await handlers.note_nickname(QnaUnitOfWork(sessions), message(), member, "leaving", 1)
    assert await copied() == ("leaving", 1, False)
    await handlers.note_nickname(QnaUnitOfWork(sessions), message(), member, "older", 0)
    assert await copied() == ("leaving", 1, False)

    await handlers.note_withdrawal(QnaUnitOfWork(sessions), message(), member)
    assert await copied() == (None, 1, True)
    await handlers.note_nickname(QnaUnitOfWork(sessions), message(), member, "back", 2)
    assert await copied() == (None, 1, True)
    assert await _refused(sessions, member) == "the member has withdrawn"
