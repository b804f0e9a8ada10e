"""HTTP API (Q&A관리): questions, answers and comments, as docs/services/qna.md specifies them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi import status as http

from chassis.app import json_response
from chassis.db import ReadSession
from chassis.idempotency import IdempotencyKeyHeader, IdempotentRequest
from chassis.pagination import Pagination
from qna import views
from qna.domain.errors import NotFound
from qna.domain.model import QuestionStatus
from qna.entrypoints.deps import CallerDep, Uow
from qna.entrypoints.schemas import (
    AnswerCreate,
    AnswerPublic,
    AnswerUpdate,
    CommentCreate,
    CommentPublic,
    CommentsPublic,
    CommentUpdate,
    QuestionCreate,
    QuestionPublic,
    QuestionsPublic,
    QuestionUpdate,
)
from qna.service_layer import handlers

router = APIRouter(prefix="/api/questions", tags=["questions"])

# ---------------------------------------------------------------- questions


@router.get("", response_model=QuestionsPublic)
async def list_questions(
    session: ReadSession,
    page: Pagination,
    status: QuestionStatus | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    author_id: uuid.UUID | None = None,
) -> Response:
    """Q&A 목록 조회: questions from the read model, newest first (eventually consistent)."""
    found = await views.list_questions(
        session, page, status=status.value if status else None, q=q, author_id=author_id
    )
    return json_response(found)


@router.post("", response_model=QuestionPublic, status_code=http.HTTP_201_CREATED)
async def ask_question(
    body: QuestionCreate, request: Request, caller: CallerDep, uow: Uow, key: IdempotencyKeyHeader
) -> views.Json:
    """Ask a question (Idempotency-Key makes a retry return the first result)."""
    return await handlers.ask_question(
        uow,
        caller,
        title=body.title,
        content=body.content,
        bounty=body.bounty,
        request=IdempotentRequest.of_route(key, caller=caller.id, request=request, body=body),
    )


@router.get("/{question_id}", response_model=QuestionPublic)
async def get_question(question_id: uuid.UUID, session: ReadSession) -> views.Json:
    """A question with its answers and comments."""
    detail = await views.question_detail(session, question_id)
    if detail is None:
        raise NotFound("no such question")
    return detail


@router.patch("/{question_id}", response_model=QuestionPublic)
async def edit_question(
    question_id: uuid.UUID, body: QuestionUpdate, caller: CallerDep, uow: Uow
) -> views.Json:
    """Edit a question (its author or an admin, only while OPEN)."""
    return await handlers.edit_question(
        uow, caller, question_id, title=body.title, content=body.content, bounty=body.bounty
    )


@router.delete("/{question_id}", status_code=http.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_question(question_id: uuid.UUID, caller: CallerDep, uow: Uow) -> Response:
    """Delete a question with its answers and comments (its author or an admin, only while OPEN)."""
    await handlers.delete_question(uow, caller, question_id)
    return Response(status_code=http.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- answers


@router.post(
    "/{question_id}/answers", response_model=AnswerPublic, status_code=http.HTTP_201_CREATED
)
async def post_answer(
    question_id: uuid.UUID,
    body: AnswerCreate,
    request: Request,
    caller: CallerDep,
    uow: Uow,
    key: IdempotencyKeyHeader,
) -> views.Json:
    """Answer an OPEN question (anyone but a withdrawn member)."""
    return await handlers.post_answer(
        uow,
        caller,
        question_id,
        content=body.content,
        request=IdempotentRequest.of_route(key, caller=caller.id, request=request, body=body),
    )


@router.patch("/{question_id}/answers/{answer_id}", response_model=AnswerPublic)
async def edit_answer(
    question_id: uuid.UUID, answer_id: uuid.UUID, body: AnswerUpdate, caller: CallerDep, uow: Uow
) -> views.Json:
    """Edit an answer (its author or an admin; never once accepted, not while ACCEPTING)."""
    return await handlers.edit_answer(uow, caller, question_id, answer_id, content=body.content)


@router.delete(
    "/{question_id}/answers/{answer_id}",
    status_code=http.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_answer(
    question_id: uuid.UUID, answer_id: uuid.UUID, caller: CallerDep, uow: Uow
) -> Response:
    """Delete an answer (its author or an admin; never once accepted, not while ACCEPTING)."""
    await handlers.delete_answer(uow, caller, question_id, answer_id)
    return Response(status_code=http.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- comments


@router.get("/{question_id}/comments", response_model=CommentsPublic)
async def list_comments(
    question_id: uuid.UUID, session: ReadSession, page: Pagination
) -> views.Json:
    """A question's comments, oldest first."""
    if not await views.question_exists(session, question_id):
        raise NotFound("no such question")
    return await views.list_comments(session, question_id, page)


@router.post(
    "/{question_id}/comments", response_model=CommentPublic, status_code=http.HTTP_201_CREATED
)
async def add_comment(
    question_id: uuid.UUID,
    body: CommentCreate,
    request: Request,
    caller: CallerDep,
    uow: Uow,
    key: IdempotencyKeyHeader,
) -> views.Json:
    """Comment on a question (Q&A 댓글 관리)."""
    return await handlers.add_comment(
        uow,
        caller,
        question_id,
        content=body.content,
        request=IdempotentRequest.of_route(key, caller=caller.id, request=request, body=body),
    )


@router.patch("/{question_id}/comments/{comment_id}", response_model=CommentPublic)
async def edit_comment(
    question_id: uuid.UUID,
    comment_id: uuid.UUID,
    body: CommentUpdate,
    caller: CallerDep,
    uow: Uow,
) -> views.Json:
    """Edit a comment (its author or an admin)."""
    return await handlers.edit_comment(uow, caller, question_id, comment_id, content=body.content)


@router.delete(
    "/{question_id}/comments/{comment_id}",
    status_code=http.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_comment(
    question_id: uuid.UUID, comment_id: uuid.UUID, caller: CallerDep, uow: Uow
) -> Response:
    """Delete a comment (its author or an admin)."""
    await handlers.delete_comment(uow, caller, question_id, comment_id)
    return Response(status_code=http.HTTP_204_NO_CONTENT)
