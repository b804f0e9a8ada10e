"""CQRS read side: the queries behind the GET endpoints and the JSON shapes they return.

Post lists come only from the ``post_summaries`` read model, each in one statement with its
total, which is a counter row (``post_list_counts``, chassis.list_counts) rather than a
``count(*)`` that grows with the list; a title search counts its matches. A single post and its
comments are read from the write model, so an author sees their own change at once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    String,
    Text,
    and_,
    bindparam,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import ScalarSelect

from board.adapters.tables import (
    POST_LIST_COUNTS,
    authors,
    boards,
    comments,
    post_summaries,
    posts,
)
from board.domain.authors import Author, Byline, byline
from board.domain.model import Board, Comment, Post
from chassis.db import CompiledSelect
from chassis.list_counts import page_with_total, split_page

LIKE_ESCAPE = "\\"


def like_pattern(text: str) -> str:
    """``%text%`` with the LIKE wildcards in ``text`` escaped: a search for "100%" is literal."""
    escaped = (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


# --- shapes ------------------------------------------------------------------------------------


def present_author(shown: Byline) -> dict[str, Any]:
    return {"id": str(shown.id) if shown.id else None, "nickname": shown.nickname}


def present_board(board: Board) -> dict[str, Any]:
    return {
        "id": str(board.id),
        "slug": board.slug,
        "name": board.name,
        "description": board.description,
    }


def present_post(post: Post, author: Author | None) -> dict[str, Any]:
    """The post detail: the list item's fields plus ``content``."""
    return {
        "id": str(post.id),
        "board_id": str(post.board_id),
        "title": post.title,
        "author": present_author(byline(post.author_id, author)),
        "comment_count": post.comment_count,
        "view_count": post.view_count,
        "created_at": post.created_at.isoformat(),
        "updated_at": post.updated_at.isoformat(),
        "content": post.content,
    }


def present_comment(comment: Comment, author: Author | None) -> dict[str, Any]:
    return {
        "id": str(comment.id),
        "post_id": str(comment.post_id),
        "author": present_author(byline(comment.author_id, author)),
        "content": comment.content,
        "created_at": comment.created_at.isoformat(),
        "updated_at": comment.updated_at.isoformat(),
    }


def _summary(row: Row[Any]) -> dict[str, Any]:
    """A list item in ``PostSummaryPublic``'s field order, ids and times as the driver gives
    them: ``chassis.app.json_response`` renders them as the model would."""
    # The projector stores the byline as it must be shown (NULL id for withdrawn authors).
    return {
        "id": row.post_id,
        "board_id": row.board_id,
        "title": row.title,
        "author": {"id": row.author_id, "nickname": row.author_nickname},
        "comment_count": row.comment_count,
        "view_count": row.view_count,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _author_of(row: Row[Any]) -> Author | None:
    if row.a_member_id is None:
        return None
    return Author(row.a_member_id, row.a_nickname, row.a_withdrawn)


_AUTHOR_COLUMNS = (
    authors.c.member_id.label("a_member_id"),
    authors.c.nickname.label("a_nickname"),
    authors.c.withdrawn.label("a_withdrawn"),
)

# --- queries -----------------------------------------------------------------------------------

#: The lists' order, newest first (``ix_post_summaries_board_created`` serves the board's).
_ORDER = ("created_at", "post_id")


async def list_boards(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(select(boards).order_by(boards.c.created_at, boards.c.slug))
    return [
        {"id": str(r.id), "slug": r.slug, "name": r.name, "description": r.description}
        for r in rows
    ]


def _newest_first(where: list[ColumnElement[bool]]) -> Select[Any]:
    s = post_summaries
    return (
        select(s)
        .where(*where)
        .order_by(s.c.created_at.desc(), s.c.post_id.desc())
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
    )


def _matches(where: list[ColumnElement[bool]]) -> ScalarSelect[int]:
    """The exact number of rows ``where`` selects (a title search: selective, not kept)."""
    return select(func.count()).select_from(post_summaries).where(*where).scalar_subquery()


def _title_matches() -> ColumnElement[bool]:
    return post_summaries.c.title.ilike(bindparam("pattern", type_=String), escape=LIKE_ESCAPE)


def _board_page(search: bool) -> CompiledSelect:
    """The board's list statement, with or without a title search, compiled once."""
    s = post_summaries
    where: list[ColumnElement[bool]] = [~s.c.deleted, s.c.board_id == bindparam("board_id")]
    if search:
        where.append(_title_matches())
    total = (
        _matches(where)
        if search
        else POST_LIST_COUNTS.total_of("board", bindparam("key", type_=Text))
    )
    return CompiledSelect(
        page_with_total(_newest_first(where), total, _ORDER, anchor=boards).where(
            boards.c.id == bindparam("board_id")
        )
    )


def _all_page(by_author: bool) -> CompiledSelect:
    """The list across boards, all posts or one author's, compiled once."""
    s = post_summaries
    where: list[ColumnElement[bool]] = [~s.c.deleted]
    if by_author:
        where.append(s.c.author_id == bindparam("author_id"))
        total = POST_LIST_COUNTS.total_of("author", bindparam("key", type_=Text))
    else:
        total = POST_LIST_COUNTS.total("all")
    return CompiledSelect(page_with_total(_newest_first(where), total, _ORDER))


_BOARD_PAGE = {search: _board_page(search) for search in (False, True)}
_ALL_PAGE = {by_author: _all_page(by_author) for by_author in (False, True)}


async def board_post_page(
    session: AsyncSession,
    board_id: uuid.UUID,
    *,
    offset: int,
    limit: int,
    q: str | None = None,
) -> tuple[list[dict[str, Any]], int] | None:
    """A board's posts, newest first, from the read model, and their total; None when the board
    does not exist. ``q`` searches titles (bound, wildcards escaped).

    One statement, compiled once (``chassis.db.CompiledSelect``): the board row, the total and
    the page. Without ``q`` the total is the board's counter row (``post_list_counts``,
    constant time whatever the board's size); with ``q`` it is the exact number of matches,
    which the trigram index finds."""
    values: dict[str, Any] = {"board_id": board_id, "offset": offset, "limit": limit}
    if q:
        values["pattern"] = like_pattern(q)
    else:
        values["key"] = POST_LIST_COUNTS.scope("board").key(board_id)
    found = split_page(await _BOARD_PAGE[bool(q)].all(session, **values), "post_id")
    if found is None:
        return None
    rows, count = found
    return [_summary(r) for r in rows], count


async def post_page(
    session: AsyncSession,
    *,
    offset: int,
    limit: int,
    author_id: uuid.UUID | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Posts across boards, newest first, optionally one author's, from the read model, and
    their total from the counter row (``all``, or ``author``); one statement, compiled once."""
    values: dict[str, Any] = {"offset": offset, "limit": limit}
    if author_id is not None:
        values["author_id"] = author_id
        values["key"] = POST_LIST_COUNTS.scope("author").key(author_id)
    rows = await _ALL_PAGE[author_id is not None].all(session, **values)
    found, count = split_page(rows, "post_id") or ([], 0)
    return [_summary(r) for r in found], count


async def post_detail(session: AsyncSession, post_id: uuid.UUID) -> dict[str, Any] | None:
    """The live post with its author's current nickname; None when missing or deleted."""
    row = (
        await session.execute(
            select(posts, *_AUTHOR_COLUMNS)
            .outerjoin(authors, authors.c.member_id == posts.c.author_id)
            .where(posts.c.id == post_id, posts.c.deleted_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    post = Post(
        id=row.id,
        board_id=row.board_id,
        author_id=row.author_id,
        title=row.title,
        content=row.content,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        comment_count=row.comment_count,
        view_count=row.view_count,
    )
    return present_post(post, _author_of(row))


async def post_is_live(session: AsyncSession, post_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(posts.c.id).where(posts.c.id == post_id, posts.c.deleted_at.is_(None))
    )
    return found is not None


async def comment_page(
    session: AsyncSession, post_id: uuid.UUID, *, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """A post's live comments, oldest first (the order of the conversation)."""
    where = and_(comments.c.post_id == post_id, comments.c.deleted_at.is_(None))
    total = await session.scalar(select(func.count()).select_from(comments).where(where))
    rows = await session.execute(
        select(comments, *_AUTHOR_COLUMNS)
        .outerjoin(authors, authors.c.member_id == comments.c.author_id)
        .where(where)
        .order_by(comments.c.created_at, comments.c.id)
        .offset(offset)
        .limit(limit)
    )
    items = [
        present_comment(
            Comment(
                id=r.id,
                post_id=r.post_id,
                author_id=r.author_id,
                content=r.content,
                created_at=r.created_at,
                updated_at=r.updated_at,
            ),
            _author_of(r),
        )
        for r in rows
    ]
    return items, int(total or 0)
