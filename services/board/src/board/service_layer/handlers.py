"""Service layer: the board use cases, each in one unit of work with the events it publishes (outbox).

Handlers receive their unit of work and inputs as parameters and never import the web framework.
API use cases open and commit their own unit of work. The member-event handlers run inside a
unit of work their caller opened, because the caller commits the effect together with its inbox
record; the saga steps live in ``saga_steps``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from board.adapters.tables import post_summaries
from board.domain.model import Actor, Board, Post
from board.service_layer import projector
from board.service_layer.unit_of_work import BoardUnitOfWork
from board.views import present_board, present_comment, present_post
from chassis.db import utcnow
from chassis.idempotency import IdempotentRequest
from chassis.messaging.envelope import event_data
from chassis.read_model import exclude_rebuild

BOARD_EVENTS = "board.events"


class NotFound(Exception):
    """The addressed board, post or comment does not exist (or was deleted)."""


class SlugTaken(Exception):
    """Another board already has this slug."""


async def _first_result(
    uow: BoardUnitOfWork, key: IdempotentRequest | None
) -> dict[str, Any] | None:
    """Claim the key, or return the result the first request with it stored."""
    if key is None:
        return None
    stored = await key.claim(uow.session)
    return dict(stored.body) if stored is not None else None


async def _keep_result(
    uow: BoardUnitOfWork, key: IdempotentRequest | None, body: dict[str, Any]
) -> None:
    if key is not None:
        await key.complete(uow.session, 201, body)


async def publish_post(uow: BoardUnitOfWork, post: Post, now: dt.datetime) -> None:
    """Stage the post's new events in the outbox (key = post id keeps them in order); the saga
    steps (``saga_steps``) publish through it too."""
    for event in post.events:
        await uow.publish(
            BOARD_EVENTS,
            event.name,
            key=str(event.post_id),
            data={**event_data(event), "occurred_at": now.isoformat()},
        )
    post.events.clear()


async def _live_post(uow: BoardUnitOfWork, post_id: uuid.UUID) -> Post:
    post = await uow.posts.get(post_id, for_update=True)
    if post is None or post.is_deleted:
        raise NotFound("post not found")
    return post


# --- boards ------------------------------------------------------------------------------------


async def open_board(
    uow: BoardUnitOfWork,
    actor: Actor,
    *,
    slug: str,
    name: str,
    description: str,
    idempotency_key: IdempotentRequest | None = None,
) -> dict[str, Any]:
    async with uow:
        if (first := await _first_result(uow, idempotency_key)) is not None:
            return first
        board = Board.open(actor, slug=slug, name=name, description=description, now=utcnow())
        if not await uow.boards.add(board):
            raise SlugTaken(f"a board with slug {slug!r} already exists")
        body = present_board(board)
        await _keep_result(uow, idempotency_key, body)
        await uow.commit()
    return body


# --- posts -------------------------------------------------------------------------------------


async def write_post(
    uow: BoardUnitOfWork,
    actor: Actor,
    board_id: uuid.UUID,
    *,
    title: str,
    content: str,
    idempotency_key: IdempotentRequest | None = None,
) -> dict[str, Any]:
    async with uow:
        if (first := await _first_result(uow, idempotency_key)) is not None:
            return first
        await uow.authors.hold_for_write(actor.id)
        board = await uow.boards.get(board_id)
        if board is None:
            raise NotFound("board not found")
        now = utcnow()
        post = Post.write(board, actor, title=title, content=content, now=now)
        await uow.posts.add(post)
        await publish_post(uow, post, now)
        body = present_post(post, await uow.authors.get(actor.id))
        await _keep_result(uow, idempotency_key, body)
        await uow.commit()
    return body


async def edit_post(
    uow: BoardUnitOfWork,
    actor: Actor,
    post_id: uuid.UUID,
    *,
    title: str | None,
    content: str | None,
) -> dict[str, Any]:
    async with uow:
        await uow.authors.hold_for_write(actor.id)
        post = await _live_post(uow, post_id)
        now = utcnow()
        post.edit(actor, now=now, title=title, content=content)
        await uow.posts.save(post)
        await publish_post(uow, post, now)
        body = present_post(post, await uow.authors.get(post.author_id))
        await uow.commit()
    return body


async def delete_post(uow: BoardUnitOfWork, actor: Actor, post_id: uuid.UUID) -> None:
    async with uow:
        await uow.authors.hold_for_write(actor.id)
        post = await _live_post(uow, post_id)
        comments = await uow.comments.live_on_post(post.id)
        now = utcnow()
        post.delete(actor, comments, now=now)
        for comment in comments:
            await uow.comments.save(comment)
        await uow.posts.save(post)
        await publish_post(uow, post, now)
        await uow.commit()


# --- comments ----------------------------------------------------------------------------------


async def add_comment(
    uow: BoardUnitOfWork,
    actor: Actor,
    post_id: uuid.UUID,
    *,
    content: str,
    idempotency_key: IdempotentRequest | None = None,
) -> dict[str, Any]:
    async with uow:
        if (first := await _first_result(uow, idempotency_key)) is not None:
            return first
        await uow.authors.hold_for_write(actor.id)
        post = await _live_post(uow, post_id)
        now = utcnow()
        comment = post.add_comment(actor, content=content, now=now)
        await uow.comments.add(comment)
        await uow.posts.save(post)
        await publish_post(uow, post, now)
        body = present_comment(comment, await uow.authors.get(actor.id))
        await _keep_result(uow, idempotency_key, body)
        await uow.commit()
    return body


async def edit_comment(
    uow: BoardUnitOfWork,
    actor: Actor,
    post_id: uuid.UUID,
    comment_id: uuid.UUID,
    *,
    content: str,
) -> dict[str, Any]:
    async with uow:
        await uow.authors.hold_for_write(actor.id)
        post = await _live_post(uow, post_id)
        comment = await uow.comments.get(comment_id)
        if comment is None or comment.is_deleted or comment.post_id != post.id:
            raise NotFound("comment not found")
        post.edit_comment(comment, actor, content=content, now=utcnow())
        await uow.comments.save(comment)
        body = present_comment(comment, await uow.authors.get(comment.author_id))
        await uow.commit()
    return body


async def delete_comment(
    uow: BoardUnitOfWork, actor: Actor, post_id: uuid.UUID, comment_id: uuid.UUID
) -> None:
    async with uow:
        await uow.authors.hold_for_write(actor.id)
        post = await _live_post(uow, post_id)
        comment = await uow.comments.get(comment_id)
        if comment is None or comment.is_deleted or comment.post_id != post.id:
            raise NotFound("comment not found")
        now = utcnow()
        post.remove_comment(comment, actor, now=now)
        await uow.comments.save(comment)
        await uow.posts.save(post)
        await publish_post(uow, post, now)
        await uow.commit()


# --- view counts (worker) ------------------------------------------------------------------------


async def record_views(uow: BoardUnitOfWork, counts: Mapping[uuid.UUID, int]) -> projector.Boards:
    """Add flushed view counts to the posts and copy the totals into the post list; returns
    the boards whose list changed."""
    async with uow:
        # a live write to the read model: a rebuild's swap waits for it, and it for the swap
        await exclude_rebuild(uow.session, projector.READ_MODEL)
        await uow.posts.add_views(counts)
        boards = await projector.copy_view_counts(uow.session, post_summaries, list(counts))
        await uow.commit()
    return boards


# --- member events (inside the consumer's unit of work) --------------------------------------


async def note_nickname(
    uow: BoardUnitOfWork, member_id: uuid.UUID, nickname: str, profile_version: int
) -> bool:
    """MemberRegistered / MemberProfileChanged: keep the local copy of the nickname; False when
    the copy is newer (or the member has withdrawn), and the event changes nothing."""
    return await uow.authors.remember_nickname(member_id, nickname, profile_version)


async def note_withdrawal(uow: BoardUnitOfWork, member_id: uuid.UUID) -> None:
    """MemberWithdrawn: the nickname is erased, the member is shown as withdrawn, and their
    writes are refused for good (``withdrawn`` outlives every saga's mark)."""
    await uow.authors.mark_withdrawn(member_id)


async def note_withdrawal_started(uow: BoardUnitOfWork, member_id: uuid.UUID, saga_id: str) -> None:
    """MemberWithdrawalStarted: refuse the member's writes with 403 from step 1 of the saga on
    (the semantic lock's mark of ``saga_id``; any order with AnonymizeAuthor ends right, see
    chassis.author_lock)."""
    await uow.authors.mark_retiring(member_id, saga_id)


async def note_withdrawal_cancelled(
    uow: BoardUnitOfWork, member_id: uuid.UUID, saga_id: str
) -> None:
    """MemberWithdrawalCancelled (CancelWithdrawal): lift the mark of ``saga_id``."""
    await uow.authors.lift_retiring(member_id, saga_id)
