"""HTTP API of the board service (docs/services/board.md): boards, posts and comments.

Reads are public; writes need a bearer token. Post lists come from the read model, a single
post from the write model. Every route translates HTTP into a service-layer call or a view.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic_core import to_json
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from board import views
from board.adapters.first_page_cache import LOOKUPS, FirstPageCache
from board.entrypoints.deps import (
    ActorDep,
    AdminDep,
    FirstPageCacheDep,
    UnitOfWorkDep,
    ViewCounterDep,
)
from board.entrypoints.schemas import (
    BoardCreate,
    BoardPublic,
    CommentCreate,
    CommentPublic,
    CommentsPublic,
    CommentUpdate,
    PostCreate,
    PostPublic,
    PostsPublic,
    PostUpdate,
)
from board.service_layer import handlers
from chassis.app import json_response
from chassis.db import ReadSession
from chassis.idempotency import IdempotencyKeyHeader, IdempotentRequest
from chassis.logging import get_logger
from chassis.metrics import DEGRADED_DEPENDENCY_FAILURES
from chassis.pagination import PageParams, Pagination
from chassis.problems import NotFound

log = get_logger(__name__)
router = APIRouter(prefix="/api", tags=["board"])

SEARCH_MAX = 100
#: A slow Redis must not hold a read: past this, a list page comes from PostgreSQL and a post is
#: shown without its views not yet flushed.
CACHE_TIMEOUT_SECONDS = 0.5
SearchQuery = Annotated[
    str | None, Query(max_length=SEARCH_MAX, description="words in the title (case-insensitive)")
]


def _search_text(q: str | None) -> str | None:
    if q is None or not q.strip():
        return None
    return q.strip()


async def _pending_views(counter: ViewCounterDep, post_id: uuid.UUID, *, count: bool) -> int:
    """Views not yet flushed; a Redis outage costs the count, never the read. A Redis that does
    not answer costs at most ``CACHE_TIMEOUT_SECONDS``, not the client's whole reply timeout."""
    try:
        async with asyncio.timeout(CACHE_TIMEOUT_SECONDS):
            return await (counter.record(post_id) if count else counter.pending(post_id))
    except (RedisError, OSError, TimeoutError) as exc:
        DEGRADED_DEPENDENCY_FAILURES.labels("board", "redis", "view_count").inc()
        log.warning("views.unavailable", post_id=str(post_id), error=f"{type(exc).__name__}: {exc}")
        return 0


# --- boards ------------------------------------------------------------------------------------


@router.get("/boards", response_model=list[BoardPublic])
async def list_boards(session: ReadSession) -> list[dict[str, Any]]:
    """List every board."""
    return await views.list_boards(session)


@router.post("/boards", status_code=status.HTTP_201_CREATED, response_model=BoardPublic)
async def create_board(
    body: BoardCreate,
    actor: AdminDep,
    uow: UnitOfWorkDep,
    request: Request,
    key: IdempotencyKeyHeader,
) -> dict[str, Any]:
    """Open a board (admins only)."""
    return await handlers.open_board(
        uow,
        actor,
        slug=body.slug,
        name=body.name,
        description=body.description,
        idempotency_key=IdempotentRequest.of_route(
            key, caller=actor.id, request=request, body=body
        ),
    )


# --- posts -------------------------------------------------------------------------------------


@router.get("/boards/{board_id}/posts", response_model=PostsPublic)
async def list_board_posts(
    board_id: uuid.UUID,
    page: Pagination,
    session: ReadSession,
    cache: FirstPageCacheDep,
    q: SearchQuery = None,
) -> Response:
    """List a board's posts, newest first, optionally searching titles (read model).
    The first page without a search is served through a Redis cache the worker invalidates."""
    search = _search_text(q)
    if cache is not None and page.page == 1 and search is None:
        return await _cached_first_page(cache, session, board_id, page)
    return json_response(await _board_post_page(session, board_id, page, search))


async def _board_post_page(
    session: AsyncSession, board_id: uuid.UUID, page: PageParams, search: str | None
) -> dict[str, Any]:
    found = await views.board_post_page(
        session, board_id, offset=page.offset, limit=page.size, q=search
    )
    if found is None:
        raise NotFound("board not found")
    items, total = found
    return {"items": items, "total": total, "page": page.page, "size": page.size}


async def _cached_first_page(
    cache: FirstPageCache, session: AsyncSession, board_id: uuid.UUID, page: PageParams
) -> Response:
    """Cache-aside: the stamp is read before PostgreSQL, so a page is stored under the
    generation it was computed in. A Redis outage costs the cache, never the read."""
    stamp: str | None = None
    try:
        async with asyncio.timeout(CACHE_TIMEOUT_SECONDS):
            stamp, cached = await cache.get(board_id, page.size)
    except (RedisError, OSError, TimeoutError) as exc:
        LOOKUPS.labels("error").inc()
        DEGRADED_DEPENDENCY_FAILURES.labels("board", "redis", "first_page_cache").inc()
        log.warning("first_page_cache.unavailable", board_id=str(board_id), error=str(exc))
        cached = None
    if cached is not None:
        LOOKUPS.labels("hit").inc()
        return Response(cached, media_type="application/json")
    body = to_json(await _board_post_page(session, board_id, page, None)).decode()
    if stamp is not None:
        LOOKUPS.labels("miss").inc()
        try:
            async with asyncio.timeout(CACHE_TIMEOUT_SECONDS):
                await cache.put(board_id, stamp, page.size, body)
        except (RedisError, OSError, TimeoutError) as exc:
            DEGRADED_DEPENDENCY_FAILURES.labels("board", "redis", "first_page_cache").inc()
            log.warning("first_page_cache.unavailable", board_id=str(board_id), error=str(exc))
    return Response(body, media_type="application/json")


@router.post(
    "/boards/{board_id}/posts", status_code=status.HTTP_201_CREATED, response_model=PostPublic
)
async def create_post(
    board_id: uuid.UUID,
    body: PostCreate,
    actor: ActorDep,
    uow: UnitOfWorkDep,
    request: Request,
    response: Response,
    key: IdempotencyKeyHeader,
) -> dict[str, Any]:
    """Write a post on a board (admins only on the notice board)."""
    post = await handlers.write_post(
        uow,
        actor,
        board_id,
        title=body.title,
        content=body.content,
        idempotency_key=IdempotentRequest.of_route(
            key, caller=actor.id, request=request, body=body
        ),
    )
    response.headers["Location"] = f"/api/posts/{post['id']}"
    return post


@router.get("/posts", response_model=PostsPublic)
async def list_posts(
    page: Pagination,
    session: ReadSession,
    author_id: Annotated[uuid.UUID | None, Query(description="only this author's posts")] = None,
) -> Response:
    """List posts across boards, newest first, optionally by one author (read model)."""
    items, total = await views.post_page(
        session, offset=page.offset, limit=page.size, author_id=author_id
    )
    return json_response({"items": items, "total": total, "page": page.page, "size": page.size})


@router.get("/posts/{post_id}", response_model=PostPublic)
async def get_post(
    post_id: uuid.UUID, session: ReadSession, counter: ViewCounterDep
) -> dict[str, Any]:
    """Read a post (counts a view)."""
    post = await views.post_detail(session, post_id)
    if post is None:
        raise NotFound("post not found")
    post["view_count"] += await _pending_views(counter, post_id, count=True)
    return post


@router.patch("/posts/{post_id}", response_model=PostPublic)
async def update_post(
    post_id: uuid.UUID,
    body: PostUpdate,
    actor: ActorDep,
    uow: UnitOfWorkDep,
    counter: ViewCounterDep,
) -> dict[str, Any]:
    """Edit a post (its author or an admin)."""
    post = await handlers.edit_post(uow, actor, post_id, title=body.title, content=body.content)
    post["view_count"] += await _pending_views(counter, post_id, count=False)
    return post


@router.delete("/posts/{post_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_post(post_id: uuid.UUID, actor: ActorDep, uow: UnitOfWorkDep) -> Response:
    """Delete a post and its comments (its author or an admin)."""
    await handlers.delete_post(uow, actor, post_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- comments ----------------------------------------------------------------------------------


@router.get("/posts/{post_id}/comments", response_model=CommentsPublic)
async def list_comments(
    post_id: uuid.UUID, page: Pagination, session: ReadSession
) -> dict[str, Any]:
    """List a post's comments, oldest first."""
    if not await views.post_is_live(session, post_id):
        raise NotFound("post not found")
    items, total = await views.comment_page(session, post_id, offset=page.offset, limit=page.size)
    return {"items": items, "total": total, "page": page.page, "size": page.size}


@router.post(
    "/posts/{post_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentPublic,
)
async def create_comment(
    post_id: uuid.UUID,
    body: CommentCreate,
    actor: ActorDep,
    uow: UnitOfWorkDep,
    request: Request,
    key: IdempotencyKeyHeader,
) -> dict[str, Any]:
    """Comment on a post."""
    return await handlers.add_comment(
        uow,
        actor,
        post_id,
        content=body.content,
        idempotency_key=IdempotentRequest.of_route(
            key, caller=actor.id, request=request, body=body
        ),
    )


@router.patch("/posts/{post_id}/comments/{comment_id}", response_model=CommentPublic)
async def update_comment(
    post_id: uuid.UUID,
    comment_id: uuid.UUID,
    body: CommentUpdate,
    actor: ActorDep,
    uow: UnitOfWorkDep,
) -> dict[str, Any]:
    """Edit a comment (its author or an admin)."""
    return await handlers.edit_comment(uow, actor, post_id, comment_id, content=body.content)


@router.delete("/posts/{post_id}/comments/{comment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_comment(
    post_id: uuid.UUID, comment_id: uuid.UUID, actor: ActorDep, uow: UnitOfWorkDep
) -> Response:
    """Delete a comment (its author or an admin)."""
    await handlers.delete_comment(uow, actor, post_id, comment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
