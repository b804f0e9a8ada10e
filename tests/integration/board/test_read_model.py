"""CQRS read model: posts, comments, nicknames and views reach the post list through the projector."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from board.adapters.tables import posts
from board.domain.authors import UNKNOWN_NICKNAME
from chassis.db import inbox_table
from tests.integration.board.harness import BoardStack, eventually

pytestmark = pytest.mark.integration


async def test_a_created_post_reaches_the_list_through_the_projection(board: BoardStack) -> None:
    author = uuid.uuid4()
    free = await board.board_id("free")
    post = await board.write_post(author, "첫 글입니다", "안녕하세요")

    item = await board.wait_for_item(free, post["id"], lambda i: True, "the post in the list")

    assert item == {
        "id": post["id"],
        "board_id": free,
        "title": "첫 글입니다",
        # no MemberRegistered has arrived for this author: a placeholder, not a failure
        "author": {"id": str(author), "nickname": UNKNOWN_NICKNAME},
        "comment_count": 0,
        "view_count": 0,
        "created_at": post["created_at"],
        "updated_at": post["updated_at"],
    }
    page = await board.board_posts(free)
    assert (page["total"], page["page"], page["size"]) == (1, 1, 20)
    notice = await board.board_posts(await board.board_id("notice"))
    assert notice["items"] == []


async def test_a_comment_updates_the_comment_count(board: BoardStack) -> None:
    free = await board.board_id("free")
    post = await board.write_post(uuid.uuid4(), "댓글 세기")
    commenter = uuid.uuid4()

    for text in ("하나", "둘"):
        response = await board.client.post(
            f"/api/posts/{post['id']}/comments",
            json={"content": text},
            headers=board.auth(commenter),
        )
        assert response.status_code == 201, response.text
    await board.wait_for_item(free, post["id"], lambda i: i["comment_count"] == 2, "two comments")

    first = (await board.client.get(f"/api/posts/{post['id']}/comments")).json()["items"][0]
    deleted = await board.client.delete(
        f"/api/posts/{post['id']}/comments/{first['id']}", headers=board.auth(commenter)
    )
    assert deleted.status_code == 204
    await board.wait_for_item(free, post["id"], lambda i: i["comment_count"] == 1, "one comment")


async def test_a_nickname_change_reaches_the_list(board: BoardStack) -> None:
    author = uuid.uuid4()
    free = await board.board_id("free")
    posts_of_author = [await board.write_post(author, f"글 {n}") for n in range(2)]
    key = str(author)

    await board.send(
        "member.events",
        "MemberRegistered",
        key,
        {
            "member_id": key,
            "nickname": "처음별명",
            "role": "USER",
            "occurred_at": "2026-01-01T00:00:00+00:00",
        },
        source="member",
    )
    for post in posts_of_author:
        await board.wait_for_item(
            free, post["id"], lambda i: i["author"]["nickname"] == "처음별명", "the first nickname"
        )

    await board.send(
        "member.events",
        "MemberProfileChanged",
        key,
        {"member_id": key, "nickname": "바뀐별명", "occurred_at": "2026-01-02T00:00:00+00:00"},
        source="member",
    )
    for post in posts_of_author:
        item = await board.wait_for_item(
            free, post["id"], lambda i: i["author"]["nickname"] == "바뀐별명", "the new nickname"
        )
        assert item["author"]["id"] == key
    # the write side's copy follows too: the detail and new posts show the new nickname
    detail = (await board.client.get(f"/api/posts/{posts_of_author[0]['id']}")).json()
    assert detail["author"] == {"id": key, "nickname": "바뀐별명"}


async def test_views_are_counted_in_redis_and_flushed_to_the_post_and_the_list(
    board: BoardStack,
) -> None:
    free = await board.board_id("free")
    post = await board.write_post(uuid.uuid4(), "조회수")

    seen = [
        (await board.client.get(f"/api/posts/{post['id']}")).json()["view_count"] for _ in range(3)
    ]

    # The detail adds the views not flushed yet. A flush running between its two reads may
    # hide a view for that one response (never count one twice); the totals below are exact.
    assert seen[0] == 1
    assert all(1 <= count <= n + 1 for n, count in enumerate(seen))
    await board.wait_for_item(free, post["id"], lambda i: i["view_count"] == 3, "three views")

    async def stored() -> bool:
        async with board.engine.connect() as conn:
            count = await conn.scalar(
                select(posts.c.view_count).where(posts.c.id == uuid.UUID(post["id"]))
            )
        return count == 3

    await eventually(stored, "the views in posts.view_count")
    assert (await board.client.get(f"/api/posts/{post['id']}")).json()["view_count"] == 4


async def test_search_matches_titles_literally_and_safely(board: BoardStack) -> None:
    free = await board.board_id("free")
    percent = await board.write_post(uuid.uuid4(), "할인 100% 확실")
    underscore = await board.write_post(uuid.uuid4(), "snake_case 이름")
    plain = await board.write_post(uuid.uuid4(), "평범한 제목")
    await board.wait_for_item(free, plain["id"], lambda i: True, "the last post")
    await board.wait_for_item(free, percent["id"], lambda i: True, "the first post")

    async def titles(q: str) -> list[str]:
        return [i["title"] for i in (await board.board_posts(free, q=q))["items"]]

    assert await titles("%") == [percent["title"]]
    assert await titles("_") == [underscore["title"]]
    assert await titles("확실") == [percent["title"]]
    assert await titles("SNAKE") == [underscore["title"]]
    assert await titles("' OR 1=1 --") == []
    assert await titles("\\") == []
    assert len(await titles("  ")) == 3  # a blank search is no filter


async def test_a_deleted_post_leaves_the_list(board: BoardStack) -> None:
    author = uuid.uuid4()
    free = await board.board_id("free")
    post = await board.write_post(author, "지울 글")
    await board.wait_for_item(free, post["id"], lambda i: True, "the post in the list")

    response = await board.client.delete(f"/api/posts/{post['id']}", headers=board.auth(author))
    assert response.status_code == 204

    async def gone() -> bool:
        return bool((await board.board_posts(free))["total"] == 0)

    await eventually(gone, "the post to leave the list")
    by_author = await board.client.get("/api/posts", params={"author_id": str(author)})
    assert by_author.json()["items"] == []


async def test_an_older_nickname_replayed_after_a_newer_one_changes_nothing(
    board: BoardStack,
) -> None:
    free = await board.board_id("free")
    member = uuid.uuid4()
    key = str(member)

    async def named(event_type: str, nickname: str, version: int) -> str:
        env = await board.send(
            "member.events",
            event_type,
            key,
            {"member_id": key, "nickname": nickname, "profile_version": version},
            source="member",
        )
        return env.id

    await named("MemberRegistered", "첫이름", 1)
    post = await board.write_post(member, "별명 순서")
    await named("MemberProfileChanged", "새이름", 3)
    await board.wait_for_item(
        free, post["id"], lambda i: i["author"]["nickname"] == "새이름", "the newest nickname"
    )

    # an operator replays an old MemberProfileChanged from the DLQ (a new delivery, old content)
    stale = await named("MemberProfileChanged", "옛이름", 2)

    async def consumed() -> bool:
        async with board.engine.connect() as conn:
            return bool(
                await conn.scalar(
                    select(func.count())
                    .select_from(inbox_table)
                    .where(inbox_table.c.message_id == stale)
                )
            )

    await eventually(consumed, "the stale event to be consumed")
    listed = await board.wait_for_item(free, post["id"], lambda i: True, "the post")
    assert listed["author"]["nickname"] == "새이름"
    detail = (await board.client.get(f"/api/posts/{post['id']}")).json()
    assert detail["author"] == {"id": key, "nickname": "새이름"}

    # a newer version still goes through
    await named("MemberProfileChanged", "최신이름", 4)
    await board.wait_for_item(
        free, post["id"], lambda i: i["author"]["nickname"] == "최신이름", "the next nickname"
    )
