"""Semantic lock on the author: a write racing AnonymizeAuthor is either covered by it or refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from board.adapters import repository
from board.adapters.tables import author_anonymizations, comments, posts
from board.domain.model import Comment, Post
from board.service_layer import saga_steps
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.db import create_session_factory
from chassis.saga import SagaCommand
from tests.integration.board.harness import BoardStack

pytestmark = pytest.mark.integration


def _command(saga_id: str, name: str, member_id: uuid.UUID, **extra: Any) -> SagaCommand:
    return SagaCommand(
        saga_id=saga_id,
        saga_type="member-withdrawal",
        step="anonymize-author",
        command=name,
        payload={"member_id": str(member_id)},
        **extra,
    )


async def _rows_by(stack: BoardStack, member_id: uuid.UUID) -> tuple[int, int]:
    """(posts, comments) whose author_id is the member, in the write model."""
    async with stack.engine.connect() as conn:
        n_posts = await conn.scalar(
            select(func.count()).select_from(posts).where(posts.c.author_id == member_id)
        )
        n_comments = await conn.scalar(
            select(func.count()).select_from(comments).where(comments.c.author_id == member_id)
        )
    return int(n_posts or 0), int(n_comments or 0)


def _assert_refused(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail


async def _post(stack: BoardStack, member: uuid.UUID, board_id: str) -> httpx.Response:
    return await stack.client.post(
        f"/api/boards/{board_id}/posts",
        json={"title": "늦은 글", "content": "본문"},
        headers=stack.auth(member),
    )


async def _comment(stack: BoardStack, member: uuid.UUID, post_id: str) -> httpx.Response:
    return await stack.client.post(
        f"/api/posts/{post_id}/comments", json={"content": "늦은 댓글"}, headers=stack.auth(member)
    )


async def test_writes_are_refused_after_anonymize_author_until_restore_author(
    board: BoardStack,
) -> None:
    member, other = uuid.uuid4(), uuid.uuid4()
    free = await board.board_id("free")
    own = await board.write_post(member, "내 글")
    others = await board.write_post(other, "다른 사람 글")
    saga_id = str(uuid.uuid4())

    await board.send_saga_command(_command(saga_id, "AnonymizeAuthor", member))
    assert (await board.saga_reply(saga_id, "AnonymizeAuthor"))["outcome"] == "SUCCESS"

    _assert_refused(await _post(board, member, free), "the member is withdrawing")
    _assert_refused(await _comment(board, member, others["id"]), "the member is withdrawing")
    own_edit = await board.client.patch(
        f"/api/posts/{own['id']}", json={"title": "x"}, headers=board.auth(member)
    )
    assert own_edit.status_code == 403
    assert await _rows_by(board, member) == (0, 0)  # nothing stored, nothing names them
    # an admin acting on others' content is not the member's write
    admin = uuid.uuid4()
    removed = await board.client.delete(
        f"/api/posts/{own['id']}", headers=board.auth(admin, "ADMIN")
    )
    assert removed.status_code == 204, removed.text

    await board.send_saga_command(
        _command(saga_id, "RestoreAuthor", member, compensates="AnonymizeAuthor")
    )
    assert (await board.saga_reply(saga_id, "RestoreAuthor"))["outcome"] == "SUCCESS"

    assert (await _post(board, member, free)).status_code == 201
    assert (await _comment(board, member, others["id"])).status_code == 201
    # the new post and comment, and the admin-deleted post RestoreAuthor gave back its author
    assert await _rows_by(board, member) == (2, 1)


async def test_a_member_the_board_never_saw_is_refused_after_anonymize_author(
    board: BoardStack,
) -> None:
    """No author row, no post: AnonymizeAuthor still sets the mark (it upserts the row)."""
    stranger = uuid.uuid4()
    saga_id = str(uuid.uuid4())
    await board.send_saga_command(_command(saga_id, "AnonymizeAuthor", stranger))
    reply = await board.saga_reply(saga_id, "AnonymizeAuthor")
    assert (reply["outcome"], reply["result"]) == ("SUCCESS", {"posts": 0, "comments": 0})

    _assert_refused(
        await _post(board, stranger, await board.board_id("free")), "the member is withdrawing"
    )
    assert await _rows_by(board, stranger) == (0, 0)


@pytest.mark.parametrize("entity", ["post", "comment"])
async def test_a_write_in_flight_is_waited_for_and_anonymized_by_the_step(
    board_api: BoardStack, monkeypatch: pytest.MonkeyPatch, entity: str
) -> None:
    """The write passed its check and is paused before its insert; AnonymizeAuthor runs
    meanwhile. The step must wait for the write, then anonymize the row it created."""
    member, other = uuid.uuid4(), uuid.uuid4()
    free = await board_api.board_id("free")
    others = await board_api.write_post(other, "다른 사람 글")
    reached, release = asyncio.Event(), asyncio.Event()

    def paused(original: Any) -> Any:
        async def add(self: Any, row: Post | Comment) -> None:
            if row.author_id == member:
                reached.set()
                await release.wait()
            await original(self, row)

        return add

    monkeypatch.setattr(repository.PostRepository, "add", paused(repository.PostRepository.add))
    monkeypatch.setattr(
        repository.CommentRepository, "add", paused(repository.CommentRepository.add)
    )
    write = asyncio.create_task(
        _post(board_api, member, free)
        if entity == "post"
        else _comment(board_api, member, others["id"])
    )
    await asyncio.wait_for(reached.wait(), timeout=10)

    saga_id = str(uuid.uuid4())
    sessions = create_session_factory(board_api.engine)

    async def anonymize() -> dict[str, Any]:
        async with BoardUnitOfWork(sessions) as uow:
            result = await saga_steps.anonymize_author(uow, saga_id, member)
            await uow.commit()
        return result

    step = asyncio.create_task(anonymize())
    done, _ = await asyncio.wait({step}, timeout=1.5)
    assert not done, "AnonymizeAuthor ran past a write that was in flight"

    release.set()
    written = await asyncio.wait_for(write, timeout=10)
    assert written.status_code == 201, written.text
    result = await asyncio.wait_for(step, timeout=10)

    assert result == (
        {"posts": 1, "comments": 0} if entity == "post" else {"posts": 0, "comments": 1}
    )
    assert await _rows_by(board_api, member) == (0, 0)  # the new row names no one
    async with board_api.engine.connect() as conn:
        recorded = await conn.scalar(
            select(func.count())
            .select_from(author_anonymizations)
            .where(author_anonymizations.c.saga_id == saga_id)
        )
    assert recorded == 1  # so RestoreAuthor would give it back
    # and the next write is refused
    _assert_refused(await _post(board_api, member, free), "the member is withdrawing")
