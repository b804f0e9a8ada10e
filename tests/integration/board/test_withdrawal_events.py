"""Semantic lock from step 1: member's withdrawal events and board's own saga step, in every order.

The kind: a withdrawn (or withdrawing) member keeps writing. board refused a member's writes
only from its own step (AnonymizeAuthor) on, so between step 1 and step 2 the member could still
post and comment. Now ``MemberWithdrawalStarted`` marks the member too and
``MemberWithdrawalCancelled`` lifts it; these arrive on ``member.events`` in no fixed order with
the saga's commands on ``saga.board.commands``, and every order must end right.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from board.adapters.tables import authors
from board.service_layer import handlers, saga_steps
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis import author_lock
from chassis.db import create_session_factory
from tests.integration.board.harness import BoardStack, eventually
from tests.support.withdrawal_orders import CASES, linear_extensions, must_refuse

pytestmark = pytest.mark.integration

Apply = Callable[[BoardUnitOfWork, uuid.UUID], Awaitable[Any]]


def withdrawal_messages(first: str, second: str) -> dict[str, Apply]:
    """What board receives of two withdrawal sagas of one member (see withdrawal_orders)."""
    return {
        "started-1": lambda uow, m: handlers.note_withdrawal_started(uow, m, first),
        "step-1": lambda uow, m: saga_steps.anonymize_author(uow, first, m),
        "restore-1": lambda uow, m: saga_steps.restore_author(uow, first, m),
        "cancelled-1": lambda uow, m: handlers.note_withdrawal_cancelled(uow, m, first),
        "started-2": lambda uow, m: handlers.note_withdrawal_started(uow, m, second),
        "step-2": lambda uow, m: saga_steps.anonymize_author(uow, second, m),
        "restore-2": lambda uow, m: saga_steps.restore_author(uow, second, m),
        "cancelled-2": lambda uow, m: handlers.note_withdrawal_cancelled(uow, m, second),
        "withdrawn": lambda uow, m: handlers.note_withdrawal(uow, m),
    }


async def _refused(sessions: async_sessionmaker[Any], member: uuid.UUID) -> str | None:
    """The refusal a write by ``member`` gets now, or None when it is allowed."""
    async with sessions() as session, session.begin():
        try:
            await author_lock.hold_for_write(session, authors, member)
        except author_lock.AuthorWithdrawing as exc:
            return str(exc)
    return None


@pytest.mark.parametrize(("items", "final"), CASES.values(), ids=CASES.keys())
async def test_every_order_of_events_and_steps_ends_right(
    board_api: BoardStack, items: list[str], final: str | None
) -> None:
    """A withdrawn member keeps writing: for every order the sagas allow, once a message of the
    running saga has been applied the member stays refused (no late event of the first saga
    lifts the second one's mark), and the end state is right."""
    sessions = create_session_factory(board_api.engine)
    orders = list(linear_extensions(items))
    assert len(orders) >= 10  # the partial order leaves real freedom
    messages = withdrawal_messages(str(uuid.uuid4()), str(uuid.uuid4()))
    for order in orders:
        member = uuid.uuid4()
        for step, name in enumerate(order):
            async with BoardUnitOfWork(sessions) as uow:
                await messages[name](uow, member)
                await uow.commit()
            if must_refuse(order[: step + 1]):
                assert await _refused(sessions, member) is not None, (order, name)
        assert await _refused(sessions, member) == final, order


async def test_member_events_refuse_and_lift_through_the_worker(board: BoardStack) -> None:
    """A withdrawn member keeps writing: end to end over Kafka, MemberWithdrawalStarted alone
    (no AnonymizeAuthor yet) refuses the member's post and comment with 403,
    MemberWithdrawalCancelled lets them write again, and MemberWithdrawn refuses for good."""
    member, other = uuid.uuid4(), uuid.uuid4()
    free = await board.board_id("free")
    others = await board.write_post(other, "다른 사람 글")
    saga = str(uuid.uuid4())

    async def post_status() -> int:
        response = await board.client.post(
            f"/api/boards/{free}/posts",
            json={"title": "글", "content": "본문"},
            headers=board.auth(member),
        )
        return response.status_code

    async def comment_status() -> int:
        response = await board.client.post(
            f"/api/posts/{others['id']}/comments",
            json={"content": "댓글"},
            headers=board.auth(member),
        )
        return response.status_code

    async def refused() -> bool:
        return await post_status() == 403 and await comment_status() == 403

    key, data = str(member), {"member_id": str(member), "saga_id": saga}
    await board.send("member.events", "MemberWithdrawalStarted", key, data, source="member")
    await eventually(refused, "MemberWithdrawalStarted did not refuse the member's writes")

    await board.send("member.events", "MemberWithdrawalCancelled", key, data, source="member")

    async def allowed() -> bool:
        return await post_status() == 201

    await eventually(allowed, "MemberWithdrawalCancelled did not lift the refusal")
    assert await comment_status() == 201

    await board.send(
        "member.events", "MemberWithdrawn", key, {"member_id": str(member)}, source="member"
    )
    await eventually(refused, "MemberWithdrawn did not refuse the member's writes")
