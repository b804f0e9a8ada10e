"""Unit of Work: one qna transaction with its repositories; an aggregate's events leave with it (outbox)."""

from __future__ import annotations

from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork, utcnow
from chassis.messaging.envelope import event_data
from qna.adapters.repository import AuthorRepository, QuestionRepository, RetirementRepository
from qna.domain.events import Event
from qna.domain.model import Question

QNA_EVENTS = "qna.events"


def event_payload(event: Event) -> dict[str, Any]:
    """The integration event body: the event's fields as JSON values, plus ``occurred_at``."""
    return {**event_data(event), "occurred_at": utcnow().isoformat()}


class QnaUnitOfWork(UnitOfWork):
    questions: QuestionRepository
    authors: AuthorRepository
    retirements: RetirementRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(session_factory, source="qna")

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.questions = QuestionRepository(self.session)
        self.authors = AuthorRepository(self.session)
        self.retirements = RetirementRepository(self.session)
        return self

    async def save(self, question: Question) -> None:
        """Store the aggregate's changes and stage its new events in the outbox, in this transaction."""
        await self.questions.save(question)
        for event in question.pull_events():
            await self.publish(
                QNA_EVENTS,
                type(event).__name__,
                key=str(event.question_id),
                data=event_payload(event),
            )
