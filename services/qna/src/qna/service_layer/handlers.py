"""Service layer: the Q&A use cases, each one transaction (state change + outbox events + idempotency record).

Handlers receive their unit of work and plain values; they know nothing about HTTP. A rule
broken in the domain surfaces as a ``qna.domain.errors`` exception, which the API maps to a
status code.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chassis.idempotency import IdempotentRequest
from qna import views
from qna.domain.errors import NotFound
from qna.domain.model import Actor, Question
from qna.service_layer.unit_of_work import QnaUnitOfWork

Json = views.Json


@dataclass(frozen=True)
class Caller:
    """The verified caller of a use case."""

    id: uuid.UUID
    is_admin: bool = False


async def _actor(uow: QnaUnitOfWork, caller: Caller) -> Actor:
    """The caller under the semantic lock on their author row (403 while withdrawing); call it
    before locking any question, as RetireAuthor locks the author first."""
    return await uow.authors.actor(caller.id, is_admin=caller.is_admin)


async def _question(uow: QnaUnitOfWork, question_id: uuid.UUID) -> Question:
    question = await uow.questions.get(question_id)
    if question is None:
        raise NotFound("no such question")
    return question


async def _created(
    uow: QnaUnitOfWork,
    request: IdempotentRequest | None,
    create: Callable[[], Awaitable[Json]],
) -> Json:
    """Run ``create`` once per idempotency key: a retry gets the first result, stored with the effect."""
    async with uow:
        if request is not None:
            stored = await request.claim(uow.session)
            if stored is not None:
                body: Json = stored.body
                return body
        body = await create()
        if request is not None:
            await request.complete(uow.session, 201, body)
        await uow.commit()
    return body


def _found(body: Json | None) -> Json:
    assert body is not None, "the row was written in this transaction"
    return body


# ---------------------------------------------------------------- questions


async def ask_question(
    uow: QnaUnitOfWork,
    caller: Caller,
    *,
    title: str,
    content: str,
    bounty: int,
    request: IdempotentRequest | None = None,
) -> Json:
    async def create() -> Json:
        question = Question.ask(await _actor(uow, caller), title, content, bounty)
        await uow.save(question)
        return _found(await views.question_detail(uow.session, question.id))

    return await _created(uow, request, create)


async def edit_question(
    uow: QnaUnitOfWork,
    caller: Caller,
    question_id: uuid.UUID,
    *,
    title: str | None = None,
    content: str | None = None,
    bounty: int | None = None,
) -> Json:
    async with uow:
        actor = await _actor(uow, caller)
        question = await _question(uow, question_id)
        question.edit(actor, title=title, content=content, bounty=bounty)
        await uow.save(question)
        body = _found(await views.question_detail(uow.session, question_id))
        await uow.commit()
    return body


async def delete_question(uow: QnaUnitOfWork, caller: Caller, question_id: uuid.UUID) -> None:
    async with uow:
        actor = await _actor(uow, caller)
        question = await _question(uow, question_id)
        question.delete(actor)
        await uow.save(question)
        await uow.commit()


# ---------------------------------------------------------------- answers


async def post_answer(
    uow: QnaUnitOfWork,
    caller: Caller,
    question_id: uuid.UUID,
    *,
    content: str,
    request: IdempotentRequest | None = None,
) -> Json:
    async def create() -> Json:
        actor = await _actor(uow, caller)
        question = await _question(uow, question_id)
        answer = question.post_answer(actor, content)
        await uow.save(question)
        return _found(await views.answer_detail(uow.session, answer.id))

    return await _created(uow, request, create)


async def edit_answer(
    uow: QnaUnitOfWork,
    caller: Caller,
    question_id: uuid.UUID,
    answer_id: uuid.UUID,
    *,
    content: str,
) -> Json:
    async with uow:
        actor = await _actor(uow, caller)
        question = await _question(uow, question_id)
        question.edit_answer(actor, answer_id, content)
        await uow.save(question)
        body = _found(await views.answer_detail(uow.session, answer_id))
        await uow.commit()
    return body


async def delete_answer(
    uow: QnaUnitOfWork, caller: Caller, question_id: uuid.UUID, answer_id: uuid.UUID
) -> None:
    async with uow:
        actor = await _actor(uow, caller)
        question = await _question(uow, question_id)
        question.delete_answer(actor, answer_id)
        await uow.save(question)
        await uow.commit()


# ---------------------------------------------------------------- comments


async def add_comment(
    uow: QnaUnitOfWork,
    caller: Caller,
    question_id: uuid.UUID,
    *,
    content: str,
    request: IdempotentRequest | None = None,
) -> Json:
    async def create() -> Json:
        actor = await _actor(uow, caller)
        question = await _question(uow, question_id)
        comment = question.add_comment(actor, content)
        await uow.save(question)
        return _found(await views.comment_detail(uow.session, comment.id))

    return await _created(uow, request, create)


async def edit_comment(
    uow: QnaUnitOfWork,
    caller: Caller,
    question_id: uuid.UUID,
    comment_id: uuid.UUID,
    *,
    content: str,
) -> Json:
    async with uow:
        actor = await _actor(uow, caller)
        question = await _question(uow, question_id)
        question.edit_comment(actor, comment_id, content)
        await uow.save(question)
        body = _found(await views.comment_detail(uow.session, comment_id))
        await uow.commit()
    return body


async def delete_comment(
    uow: QnaUnitOfWork, caller: Caller, question_id: uuid.UUID, comment_id: uuid.UUID
) -> None:
    async with uow:
        actor = await _actor(uow, caller)
        question = await _question(uow, question_id)
        question.delete_comment(actor, comment_id)
        await uow.save(question)
        await uow.commit()


# ---------------------------------------------------------------- acceptance pre-check (saga start)


async def check_acceptance(
    uow: QnaUnitOfWork, caller: Caller, question_id: uuid.UUID, answer_id: uuid.UUID
) -> Json:
    """Refuse a plainly invalid acceptance before the saga starts (the saga re-checks in its step)."""
    async with uow:
        # the asker starts a write (the acceptance saga): refused while they are withdrawing
        await _actor(uow, caller)
        question = await uow.questions.get(question_id, lock=False)
        if question is None:
            raise NotFound("no such question")
        if question.find_answer(answer_id) is None and (
            await uow.questions.question_of_answer(answer_id) is None
        ):
            raise NotFound("no such answer")
        answer = question.check_acceptance(caller.id, answer_id)
    return {
        "question_id": str(question.id),
        "answer_id": str(answer.id),
        "asker_id": str(caller.id),
        "answerer_id": str(answer.author_id),
        "bounty": question.bounty,
        "status": question.status.value,
    }


# ---------------------------------------------------------------- member.events (local author copy)


async def note_nickname(
    uow: QnaUnitOfWork, message_id: str, member_id: uuid.UUID, nickname: str, profile_version: int
) -> None:
    """MemberRegistered / MemberProfileChanged: keep the local copy of the nickname, unless the
    copy is newer (by profile version, as after a replay from a dead-letter topic) or the member
    has withdrawn. Idempotent: the inbox records the message id."""
    async with uow:
        if not await uow.first_delivery("qna-authors", message_id):
            return
        await uow.authors.remember_nickname(member_id, nickname, profile_version)
        await uow.commit()


async def note_withdrawal(uow: QnaUnitOfWork, message_id: str, member_id: uuid.UUID) -> None:
    """MemberWithdrawn: the nickname is erased, the member is shown as withdrawn, and their
    writes are refused for good (``withdrawn`` outlives every saga's mark)."""
    async with uow:
        if not await uow.first_delivery("qna-authors", message_id):
            return
        await uow.authors.mark_withdrawn(member_id)
        await uow.commit()


async def note_withdrawal_started(
    uow: QnaUnitOfWork, message_id: str, member_id: uuid.UUID, saga_id: str
) -> None:
    """MemberWithdrawalStarted: refuse the member's writes with 403 from step 1 of the saga on
    (the semantic lock's mark of ``saga_id``; any order with RetireAuthor ends right, see
    chassis.author_lock). Idempotent: the inbox records the message id."""
    async with uow:
        if not await uow.first_delivery("qna-authors", message_id):
            return
        await uow.authors.mark_retiring(member_id, saga_id)
        await uow.commit()


async def note_withdrawal_cancelled(
    uow: QnaUnitOfWork, message_id: str, member_id: uuid.UUID, saga_id: str
) -> None:
    """MemberWithdrawalCancelled (CancelWithdrawal): lift the mark of ``saga_id``."""
    async with uow:
        if not await uow.first_delivery("qna-authors", message_id):
            return
        await uow.authors.lift_retiring(member_id, saga_id)
        await uow.commit()
