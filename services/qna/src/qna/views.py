"""CQRS read side: the question list from the ``question_summaries`` read model, details from the write model.

The list's total is a counter row (``question_list_counts``, chassis.list_counts), not a
``count(*)`` that grows with the questions; a title search counts its matches.

Every function returns JSON-ready dictionaries (ids and times as strings), the shapes of
docs/services/qna.md, so a stored idempotent response is byte-for-byte what the first call returned;
the list, never stored, leaves its items' ids and times to ``chassis.app.json_response``.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, Text, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import ScalarSelect

from chassis.db import CompiledSelect
from chassis.list_counts import page_with_total, split_page
from chassis.pagination import PageParams
from qna.adapters import tables

#: What an author is called once they have withdrawn (docs/sagas.md, member-withdrawal).
WITHDRAWN_NICKNAME = "탈퇴한 회원"
#: What a member is called until their MemberRegistered has reached this service.
UNKNOWN_NICKNAME = "알 수 없음"

Json = dict[str, Any]


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _time(value: dt.datetime) -> str:
    return value.isoformat()


def author_view(author_id: uuid.UUID | None, nickname: str | None, withdrawn: bool | None) -> Json:
    """``{id, nickname}``; the id is null once the author has withdrawn or was anonymized."""
    if author_id is None or withdrawn:
        return {"id": None, "nickname": WITHDRAWN_NICKNAME}
    return {"id": str(author_id), "nickname": nickname or UNKNOWN_NICKNAME}


def escape_like(text: str) -> str:
    """Make user text match literally inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ---------------------------------------------------------------- the list (read model)


async def list_questions(
    session: AsyncSession,
    page: PageParams,
    *,
    status: str | None = None,
    q: str | None = None,
    author_id: uuid.UUID | None = None,
) -> Json:
    """Q&A 목록 조회: newest first, filtered by status, title text and author, with the total, in
    one statement, compiled once per combination of filters (``chassis.db.CompiledSelect``).
    Ids and times of the items are left as the driver gives them (``uuid.UUID``, aware
    ``datetime``) for ``chassis.app.json_response``, which renders them as the model does."""
    values: dict[str, Any] = {"offset": page.offset, "limit": page.size}
    if status is not None:
        values["status"] = status
    if q:
        # bound parameter + escaped wildcards; the trigram GIN index serves ILIKE '%...%'
        values["pattern"] = f"%{escape_like(q)}%"
    if author_id is not None:
        values["author_id"] = author_id
    scope = _scope(status is not None, author_id is not None)
    if not q:
        values["key"] = tables.QUESTION_LIST_COUNTS.scope(scope).key(
            *(v for v in (author_id, status) if v is not None)
        )
    statement = _list_statement(status is not None, bool(q), author_id is not None)
    rows, total = split_page(await statement.all(session, **values), "id") or ([], 0)
    items = [
        {
            "id": r["id"],
            "title": r["title"],
            "author": author_view(r["author_id"], r["author_nickname"], r["author_withdrawn"]),
            "bounty": r["bounty"],
            "status": r["status"],
            "answer_count": r["answer_count"],
            "accepted_answer_id": r["accepted_answer_id"],
            "created_at": r["created_at"],
        }
        for r in (row._mapping for row in rows)
    ]
    return {"items": items, "total": total, "page": page.page, "size": page.size}


def _scope(by_status: bool, by_author: bool) -> str:
    """The counter scope of a list without a title search (``question_list_counts``)."""
    if by_author:
        return "author_status" if by_status else "author"
    return "status" if by_status else "all"


@functools.cache
def _list_statement(by_status: bool, search: bool, by_author: bool) -> CompiledSelect:
    """The list's statement for one combination of filters, built and compiled at its first
    use. Its total is the list's counter row (constant time whatever the number of
    questions), or with a title search the exact number of matches (a search is selective,
    and the trigram index finds them)."""
    s = tables.question_summaries
    where: list[ColumnElement[bool]] = [s.c.deleted.is_(False)]
    if by_status:
        where.append(s.c.status == bindparam("status"))
    if search:
        where.append(s.c.title.ilike(bindparam("pattern", type_=String), escape="\\"))
    if by_author:
        where.append(s.c.author_id == bindparam("author_id"))
    page_rows = (
        select(s)
        .where(*where)
        .order_by(s.c.created_at.desc(), s.c.id.desc())
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
    )
    total: ScalarSelect[int]
    if search:
        total = select(func.count()).select_from(s).where(*where).scalar_subquery()
    else:
        key = bindparam("key", type_=Text)
        total = tables.QUESTION_LIST_COUNTS.total_of(_scope(by_status, by_author), key)
    return CompiledSelect(page_with_total(page_rows, total, ("created_at", "id")))


# ---------------------------------------------------------------- details (write model)


def _with_author(table: Any) -> Any:
    a = tables.authors
    return select(table, a.c.nickname, a.c.withdrawn).outerjoin(
        a, a.c.member_id == table.c.author_id
    )


def _answer_json(r: Any) -> Json:
    return {
        "id": str(r["id"]),
        "author": author_view(r["author_id"], r["nickname"], r["withdrawn"]),
        "content": r["content"],
        "accepted": r["accepted"],
        "created_at": _time(r["created_at"]),
    }


def _comment_json(r: Any) -> Json:
    return {
        "id": str(r["id"]),
        "author": author_view(r["author_id"], r["nickname"], r["withdrawn"]),
        "content": r["content"],
        "created_at": _time(r["created_at"]),
    }


async def question_detail(session: AsyncSession, question_id: uuid.UUID) -> Json | None:
    """The question with its answers and comments, straight from the write model (read-your-writes)."""
    q = tables.questions
    row = (await session.execute(_with_author(q).where(q.c.id == question_id))).mappings().first()
    if row is None:
        return None
    a, c = tables.answers, tables.question_comments
    answers = (
        (
            await session.execute(
                _with_author(a)
                .where(a.c.question_id == question_id)
                .order_by(a.c.created_at, a.c.id)
            )
        )
        .mappings()
        .all()
    )
    comments = (
        (
            await session.execute(
                _with_author(c)
                .where(c.c.question_id == question_id)
                .order_by(c.c.created_at, c.c.id)
            )
        )
        .mappings()
        .all()
    )
    return {
        "id": str(row["id"]),
        "title": row["title"],
        "author": author_view(row["author_id"], row["nickname"], row["withdrawn"]),
        "bounty": row["bounty"],
        "status": row["status"],
        "answer_count": len(answers),
        "accepted_answer_id": _id(row["accepted_answer_id"]),
        "created_at": _time(row["created_at"]),
        "content": row["content"],
        "answers": [_answer_json(r) for r in answers],
        "comments": [_comment_json(r) for r in comments],
    }


async def answer_detail(session: AsyncSession, answer_id: uuid.UUID) -> Json | None:
    a = tables.answers
    row = (await session.execute(_with_author(a).where(a.c.id == answer_id))).mappings().first()
    return None if row is None else _answer_json(row)


async def comment_detail(session: AsyncSession, comment_id: uuid.UUID) -> Json | None:
    c = tables.question_comments
    row = (await session.execute(_with_author(c).where(c.c.id == comment_id))).mappings().first()
    return None if row is None else _comment_json(row)


async def question_exists(session: AsyncSession, question_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(tables.questions.c.id).where(tables.questions.c.id == question_id)
    )
    return found is not None


async def list_comments(session: AsyncSession, question_id: uuid.UUID, page: PageParams) -> Json:
    """A question's comments, oldest first."""
    c = tables.question_comments
    total = await session.scalar(
        select(func.count()).select_from(c).where(c.c.question_id == question_id)
    )
    rows = (
        (
            await session.execute(
                _with_author(c)
                .where(c.c.question_id == question_id)
                .order_by(c.c.created_at, c.c.id)
                .offset(page.offset)
                .limit(page.size)
            )
        )
        .mappings()
        .all()
    )
    return {
        "items": [_comment_json(r) for r in rows],
        "total": total or 0,
        "page": page.page,
        "size": page.size,
    }
