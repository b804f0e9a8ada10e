"""Saga participant steps: board's part of member-withdrawal (docs/sagas.md).

AnonymizeAuthor is a compensatable step and RestoreAuthor its compensation. Each step runs inside
the unit of work opened by ``chassis.saga.SagaParticipant``, which commits the effect, the command
log and the reply together. The compensation succeeds as a
no-op when its forward step took no effect.
"""

from __future__ import annotations

import uuid
from typing import Any

from board.service_layer import handlers
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.db import utcnow


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
        await handlers.publish_post(uow, post, now)
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
            await handlers.publish_post(uow, post, utcnow())
            restored_posts += 1
    restored_comments = await uow.comments.restore(comment_ids, member_id)
    await uow.anonymizations.forget(saga_id, member_id)
    await uow.authors.lift_retiring(member_id, saga_id)
    return {"posts": restored_posts, "comments": restored_comments}
