"""API schemas: the qna request and response bodies of docs/services/qna.md (``XCreate``, ``XUpdate``, ``XPublic``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from chassis.pagination import Page
from qna.domain.model import (
    BOUNTY_MAX,
    COMMENT_MAX_LENGTH,
    CONTENT_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    QuestionStatus,
)


def _not_blank(value: str) -> str:
    """Not only white space. (NUL and lone surrogates never get here: the chassis input guard
    refuses them for every field.)"""
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Title = Annotated[str, Field(min_length=1, max_length=TITLE_MAX_LENGTH), AfterValidator(_not_blank)]
Content = Annotated[
    str, Field(min_length=1, max_length=CONTENT_MAX_LENGTH), AfterValidator(_not_blank)
]
CommentText = Annotated[
    str, Field(min_length=1, max_length=COMMENT_MAX_LENGTH), AfterValidator(_not_blank)
]
Bounty = Annotated[int, Field(ge=0, le=BOUNTY_MAX, strict=True)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- requests


class QuestionCreate(_Input):
    title: Title
    content: Content
    bounty: Bounty = 0


class QuestionUpdate(_Input):
    """Only the fields present change."""

    title: Title | None = None
    content: Content | None = None
    bounty: Bounty | None = None


class AnswerCreate(_Input):
    content: Content


class AnswerUpdate(_Input):
    content: Content


class CommentCreate(_Input):
    content: CommentText


class CommentUpdate(_Input):
    content: CommentText


# ---------------------------------------------------------------- responses


class AuthorPublic(BaseModel):
    """``id`` is null once the author has withdrawn ("탈퇴한 회원"); a member not yet known from
    member.events is "알 수 없음" until their nickname arrives."""

    id: uuid.UUID | None
    nickname: str


class AnswerPublic(BaseModel):
    id: uuid.UUID
    author: AuthorPublic
    content: str
    accepted: bool
    created_at: dt.datetime


class CommentPublic(BaseModel):
    id: uuid.UUID
    author: AuthorPublic
    content: str
    created_at: dt.datetime


class CommentsPublic(Page[CommentPublic]):
    pass


class QuestionSummaryPublic(BaseModel):
    """One item of the question list (from the read model)."""

    id: uuid.UUID
    title: str
    author: AuthorPublic
    bounty: int
    status: QuestionStatus
    answer_count: int
    accepted_answer_id: uuid.UUID | None
    created_at: dt.datetime


class QuestionsPublic(Page[QuestionSummaryPublic]):
    pass


class QuestionPublic(QuestionSummaryPublic):
    """The question detail (from the write model: the author sees their change at once)."""

    content: str
    answers: list[AnswerPublic]
    comments: list[CommentPublic]


class AcceptanceCheckPublic(BaseModel):
    """What the saga service needs to start an answer-acceptance saga."""

    question_id: uuid.UUID
    answer_id: uuid.UUID
    asker_id: uuid.UUID
    answerer_id: uuid.UUID
    bounty: int
    status: QuestionStatus
