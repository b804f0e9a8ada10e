"""Saga participant steps: qna's part of answer-acceptance and member-withdrawal (docs/sagas.md).

Each step runs inside the unit of work opened by ``chassis.saga.SagaParticipant``, which
commits the effect, the command log and the reply together. A business refusal is a
``CommandRejected``; compensations succeed as a no-op when their forward step took no effect.
Forward steps repeated with a new attempt number return the same result without a second effect.
"""

from __future__ import annotations

import uuid
from typing import Any

from chassis.author_lock import AuthorWithdrawing
from chassis.saga import CommandRejected
from qna.domain.errors import DomainError
from qna.domain.model import AuthorTraces, Question, QuestionStatus
from qna.service_layer.unit_of_work import QnaUnitOfWork

Result = dict[str, Any]


async def _question(uow: QnaUnitOfWork, question_id: uuid.UUID) -> Question:
    question = await uow.questions.get(question_id)
    if question is None:
        raise CommandRejected("no such question")
    return question


# ---------------------------------------------------------------- answer-acceptance


async def reserve_acceptance(
    uow: QnaUnitOfWork,
    saga_id: str,
    question_id: uuid.UUID,
    answer_id: uuid.UUID,
    asker_id: uuid.UUID,
) -> Result:
    """OPEN -> ACCEPTING, holding the pending answer; replies with what the points transfer needs.
    Refused while the asker is withdrawing (the semantic lock, taken before the question's)."""
    try:
        await uow.authors.actor(asker_id, is_admin=False)
    except AuthorWithdrawing as exc:
        raise CommandRejected(exc.detail) from exc
    question = await _question(uow, question_id)
    if question.is_reserved_by(saga_id) and question.pending_answer_id == answer_id:
        answer = question.find_answer(answer_id)  # a repeated attempt: already reserved
        assert answer is not None
    else:
        try:
            answer = question.reserve_acceptance(asker_id, answer_id, saga_id)
        except DomainError as exc:
            raise CommandRejected(str(exc)) from exc
        await uow.save(question)
    return {
        "bounty": question.bounty,
        "asker_id": str(asker_id),
        "answerer_id": str(answer.author_id),
    }


async def cancel_acceptance(uow: QnaUnitOfWork, saga_id: str, question_id: uuid.UUID) -> Result:
    """ACCEPTING -> OPEN, only if this saga holds the lock; otherwise there is nothing to undo."""
    question = await uow.questions.get(question_id)
    if question is None or not question.is_reserved_by(saga_id):
        return {"cancelled": False}
    question.cancel_acceptance()
    await uow.save(question)
    return {"cancelled": True}


async def confirm_acceptance(
    uow: QnaUnitOfWork, saga_id: str, question_id: uuid.UUID, answer_id: uuid.UUID
) -> Result:
    """ACCEPTING -> RESOLVED: the pending answer is accepted (AnswerAccepted is published)."""
    question = await _question(uow, question_id)
    already_confirmed = (
        question.status is QuestionStatus.RESOLVED
        and question.acceptance_saga_id == saga_id
        and question.accepted_answer_id == answer_id
    )
    if not already_confirmed:
        if not question.is_reserved_by(saga_id):
            raise CommandRejected("the question is not reserved for this saga")
        try:
            question.confirm_acceptance(answer_id)
        except DomainError as exc:
            raise CommandRejected(str(exc)) from exc
        await uow.save(question)
    return {"question_id": str(question.id), "answer_id": str(answer_id)}


# ---------------------------------------------------------------- member-withdrawal


async def retire_author(uow: QnaUnitOfWork, saga_id: str, member_id: uuid.UUID) -> Result:
    """Close the member's OPEN questions and anonymize everything they wrote, recording each change
    under the saga id; refused while one of their questions is ACCEPTING.

    First the semantic lock (chassis.author_lock): it waits for the member's writes in flight,
    so their rows are closed and anonymized here too, and refuses every later write with 403.
    A refusal rolls the mark back with the rest of the transaction."""
    await uow.authors.mark_retiring(member_id, saga_id)
    questions = [
        q
        for q in [await uow.questions.get(i) for i in await uow.questions.ids_touched_by(member_id)]
        if q is not None
    ]
    if any(q.author_id == member_id and q.status is QuestionStatus.ACCEPTING for q in questions):
        raise CommandRejected("one of the member's questions is accepting an answer")
    closed = anonymized = 0
    for question in questions:
        close = question.author_id == member_id and question.status is QuestionStatus.OPEN
        if close:
            question.close()
            closed += 1
        traces = question.anonymize_author(member_id)
        if close or traces:
            anonymized += 1
            await uow.retirements.record(
                saga_id, question.id, member_id, closed=close, traces=traces
            )
        await uow.save(question)
    return {"closed_questions": closed, "changed_questions": anonymized}


async def restore_author(uow: QnaUnitOfWork, saga_id: str, member_id: uuid.UUID) -> Result:
    """Undo exactly what this saga's RetireAuthor recorded: reopen what it closed, give the
    member back their questions, answers and comments, and lift the saga's semantic lock."""
    reopened = restored = 0
    for record in await uow.retirements.for_saga(saga_id):
        question = await uow.questions.get(record["question_id"])
        if question is None:  # deleted since (only possible for a question the member did not ask)
            continue
        question.restore_author(
            record["member_id"],
            AuthorTraces(
                question=record["question_anonymized"],
                answer_ids=tuple(record["answer_ids"]),
                comment_ids=tuple(record["comment_ids"]),
            ),
        )
        if record["question_closed"] and question.status is QuestionStatus.CLOSED:
            question.reopen()
            reopened += 1
        restored += 1
        await uow.save(question)
    await uow.retirements.forget(saga_id)
    await uow.authors.lift_retiring(member_id, saga_id)
    return {"reopened_questions": reopened, "restored_questions": restored}
