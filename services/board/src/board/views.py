"""CQRS read side: the queries behind the GET endpoints and the JSON shapes they return.

Post lists come only from the ``post_summaries`` read model. A single post and its comments are
read from the write model, so an author sees their own change at once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from board.adapters.tables import authors, boards, comments, post_summaries, posts
from board.domain.authors import Author, Byline, byline
from board.domain.model import Board, Comment, Post

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
    # The projector stores the byline as it must be shown (NULL id for withdrawn authors).
    return {
        "id": str(row.post_id),
        "board_id": str(row.board_id),
        "title": row.title,
        "author": {
            "id": str(row.author_id) if row.author_id else None,
            "nickname": row.author_nickname,
        },
        "comment_count": row.comment_count,
        "view_count": row.view_count,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
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


async def list_boards(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(select(boards).order_by(boards.c.created_at, boards.c.slug))
    return [
        {"id": str(r.id), "slug": r.slug, "name": r.name, "description": r.description}
        for r in rows
    ]


async def board_exists(session: AsyncSession, board_id: uuid.UUID) -> bool:
    return await session.scalar(select(boards.c.id).where(boards.c.id == board_id)) is not None


async def post_page(
    session: AsyncSession,
    *,
    offset: int,
    limit: int,
    board_id: uuid.UUID | None = None,
    author_id: uuid.UUID | None = None,
    q: str | None = None,
    table: Table = post_summaries,
) -> tuple[list[dict[str, Any]], int]:
    """Newest first, from the read model; ``q`` searches titles (bound, wildcards escaped)."""
    conditions: list[ColumnElement[bool]] = [~table.c.deleted]
    if board_id is not None:
        conditions.append(table.c.board_id == board_id)
    if author_id is not None:
        conditions.append(table.c.author_id == author_id)
    if q:
        conditions.append(table.c.title.ilike(like_pattern(q), escape=LIKE_ESCAPE))
    where = and_(*conditions)
    total = await session.scalar(select(func.count()).select_from(table).where(where))
    rows = await session.execute(
        select(table)
        .where(where)
        .order_by(table.c.created_at.desc(), table.c.post_id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_summary(r) for r in rows], int(total or 0)


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
