"""Service layer: the board use cases, each in one unit of work with the events it publishes (outbox).

Handlers receive their unit of work and inputs as parameters and never import the web framework.
API use cases open and commit their own unit of work. The saga steps and the member-event
handlers run inside a unit of work their caller opened, because the caller commits the effect
together with its reply or its inbox record.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table

from board.domain.model import Actor, Board, Post
from board.service_layer import projector
from board.service_layer.unit_of_work import BoardUnitOfWork
from board.views import present_board, present_comment, present_post
from chassis.db import utcnow
from chassis.idempotency import IdempotentRequest
from chassis.messaging.envelope import event_data

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


async def _publish(uow: BoardUnitOfWork, post: Post, now: dt.datetime) -> None:
    """Stage the post's new events in the outbox (key = post id keeps them in order)."""
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
        await _publish(uow, post, now)
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
        await _publish(uow, post, now)
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
        await _publish(uow, post, now)
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
        await _publish(uow, post, now)
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
        await _publish(uow, post, now)
        await uow.commit()


# --- view counts (worker) ------------------------------------------------------------------------


async def record_views(
    uow: BoardUnitOfWork, counts: Mapping[uuid.UUID, int], summaries: Table
) -> projector.Boards:
    """Add flushed view counts to the posts and copy the totals into the post list; returns
    the boards whose list changed."""
    async with uow:
        await uow.posts.add_views(counts)
        boards = await projector.copy_view_counts(uow.session, summaries, list(counts))
        await uow.commit()
    return boards


# --- member events (inside the consumer's unit of work) --------------------------------------


async def note_nickname(
    uow: BoardUnitOfWork, member_id: uuid.UUID, nickname: str, profile_version: int
) -> bool:
    """MemberRegistered / MemberProfileChanged: keep the local copy of the nickname; False when
    the copy is newer (or the member has withdrawn), and the event changes nothing."""
    return await uow.authors.remember(member_id, nickname, profile_version, utcnow())


async def note_withdrawal(uow: BoardUnitOfWork, member_id: uuid.UUID) -> None:
    """MemberWithdrawn: the nickname is erased, the member is shown as withdrawn, and their
    writes are refused for good (``withdrawn`` outlives every saga's mark)."""
    await uow.authors.mark_withdrawn(member_id, utcnow())


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


# --- saga steps of member-withdrawal (inside the participant's unit of work) -----------------


async def anonymize_author(
    uow: BoardUnitOfWork, saga_id: str, member_id: uuid.UUID
) -> dict[str, Any]:
    """AnonymizeAuthor: the member's posts and comments lose their author; what changed is kept
    per saga, and each changed post announces ``PostUpdated`` with ``author_id: null``.

    First the semantic lock (chassis.author_lock): it waits for the member's writes in flight,
    so their rows are anonymized here too, and refuses every later write with 403."""
    await uow.authors.mark_retiring(member_id, saga_id)
    now = utcnow()
    post_ids: list[uuid.UUID] = []
    for post in await uow.posts.by_author(member_id):
        post.anonymize_author()
        await uow.posts.save(post)
        await _publish(uow, post, now)
        post_ids.append(post.id)
    comment_ids = await uow.comments.anonymize(member_id)
    await uow.anonymizations.record(
        saga_id, member_id, post_ids=post_ids, comment_ids=comment_ids, now=now
    )
    return {"posts": len(post_ids), "comments": len(comment_ids)}


async def restore_author(
    uow: BoardUnitOfWork, saga_id: str, member_id: uuid.UUID
) -> dict[str, Any]:
    """RestoreAuthor: undo exactly what this saga's AnonymizeAuthor changed (a no-op if nothing)."""
    post_ids, comment_ids = await uow.anonymizations.of_saga(saga_id, member_id)
    restored_posts = 0
    for post in await uow.posts.by_ids(post_ids):
        if post.author_id is None:
            post.restore_author(member_id)
            await uow.posts.save(post)
            await _publish(uow, post, utcnow())
            restored_posts += 1
    restored_comments = await uow.comments.restore(comment_ids, member_id)
    await uow.anonymizations.forget(saga_id, member_id)
    await uow.authors.lift_retiring(member_id, saga_id)
    return {"posts": restored_posts, "comments": restored_comments}
