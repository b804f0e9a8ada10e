"""Unit of Work: one qna transaction with its repositories; an aggregate's events leave with it (outbox)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.db import UnitOfWork, utcnow
from qna.adapters.repository import AuthorRepository, QuestionRepository, RetirementRepository
from qna.domain.events import Event
from qna.domain.model import Question

QNA_EVENTS = "qna.events"


def event_payload(event: Event) -> dict[str, Any]:
    """The integration event body: the event's fields as JSON values, plus ``occurred_at``."""

    def plain(value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, enum.Enum):
            return value.value
        return value

    body = {f.name: plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    body["occurred_at"] = utcnow().isoformat()
    return body


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
