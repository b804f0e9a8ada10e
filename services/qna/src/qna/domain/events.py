"""Domain events: what happened to a question, recorded by the aggregate and published as integration events.

Each event is also the body of the integration event of the same name on ``qna.events``
(docs/CONVENTIONS.md); ``version`` is the question aggregate's version after the change, so
projections can apply them order-safely.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """Base of every question event; the integration event's key is ``question_id``."""

    question_id: uuid.UUID
    #: the aggregate's version after this event
    version: int


@dataclass(frozen=True)
class QuestionAsked(Event):
    author_id: uuid.UUID | None
    title: str
    bounty: int
    status: str
    created_at: dt.datetime


@dataclass(frozen=True)
class QuestionUpdated(Event):
    author_id: uuid.UUID | None
    title: str
    bounty: int
    status: str


@dataclass(frozen=True)
class QuestionDeleted(Event):
    author_id: uuid.UUID | None


@dataclass(frozen=True)
class QuestionClosed(Event):
    author_id: uuid.UUID | None


@dataclass(frozen=True)
class QuestionReopened(Event):
    author_id: uuid.UUID | None


@dataclass(frozen=True)
class AnswerPosted(Event):
    answer_id: uuid.UUID
    author_id: uuid.UUID | None


@dataclass(frozen=True)
class AnswerDeleted(Event):
    answer_id: uuid.UUID
    author_id: uuid.UUID | None


@dataclass(frozen=True)
class AnswerAccepted(Event):
    answer_id: uuid.UUID
    answer_author_id: uuid.UUID | None
    asker_id: uuid.UUID | None
    bounty: int


@dataclass(frozen=True)
class QnaCommentAdded(Event):
    comment_id: uuid.UUID
    author_id: uuid.UUID | None


@dataclass(frozen=True)
class QnaCommentDeleted(Event):
    comment_id: uuid.UUID
    author_id: uuid.UUID | None
