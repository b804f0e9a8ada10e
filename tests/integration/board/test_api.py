"""The HTTP edge of board api: permissions, idempotent creates and malformed requests (never a 5xx)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from board.adapters.tables import comments, posts
from board.domain.authors import UNKNOWN_NICKNAME
from tests.integration.board.harness import BoardStack

pytestmark = pytest.mark.integration


async def _count(stack: BoardStack, table: Any) -> int:
    async with stack.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_boards_are_seeded_and_only_admins_open_new_ones(board_api: BoardStack) -> None:
    seeded = (await board_api.client.get("/api/boards")).json()
    assert [(b["slug"], b["name"]) for b in seeded] == [
        ("notice", "공지사항"),
        ("free", "자유게시판"),
    ]
    assert set(seeded[0]) == {"id", "slug", "name", "description"}
    body = {"slug": "qna-talk", "name": "질문 잡담", "description": "아무 이야기"}
    admin = board_api.auth(uuid.uuid4(), "ADMIN")

    assert (await board_api.client.post("/api/boards", json=body)).status_code == 401
    user = board_api.auth(uuid.uuid4())
    assert (await board_api.client.post("/api/boards", json=body, headers=user)).status_code == 403
    created = await board_api.client.post("/api/boards", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("slug", "name", "description")} == body
    duplicate = await board_api.client.post("/api/boards", json=body, headers=admin)
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert [b["slug"] for b in (await board_api.client.get("/api/boards")).json()] == [
        "notice",
        "free",
        "qna-talk",
    ]


async def test_only_admins_post_on_the_notice_board(board_api: BoardStack) -> None:
    notice = await board_api.board_id("notice")
    body = {"title": "공지", "content": "내용"}

    as_user = await board_api.client.post(
        f"/api/boards/{notice}/posts", json=body, headers=board_api.auth(uuid.uuid4())
    )
    as_admin = await board_api.client.post(
        f"/api/boards/{notice}/posts", json=body, headers=board_api.auth(uuid.uuid4(), "ADMIN")
    )

    assert as_user.status_code == 403
    assert as_admin.status_code == 201
    assert as_admin.headers["location"] == f"/api/posts/{as_admin.json()['id']}"


async def test_only_the_author_or_an_admin_changes_a_post_or_comment(board_api: BoardStack) -> None:
    author, stranger = uuid.uuid4(), uuid.uuid4()
    admin = board_api.auth(uuid.uuid4(), "ADMIN")
    post = await board_api.write_post(author, "원래 제목", "원래 내용")
    url = f"/api/posts/{post['id']}"
    comment = (
        await board_api.client.post(
            f"{url}/comments", json={"content": "댓글"}, headers=board_api.auth(author)
        )
    ).json()
    comment_url = f"{url}/comments/{comment['id']}"

    assert (
        await board_api.client.patch(url, json={"title": "x"}, headers=board_api.auth(stranger))
    ).status_code == 403
    assert (await board_api.client.delete(url, headers=board_api.auth(stranger))).status_code == 403
    assert (
        await board_api.client.patch(
            comment_url, json={"content": "x"}, headers=board_api.auth(stranger)
        )
    ).status_code == 403
    assert (await board_api.client.patch(url, json={"title": "x"})).status_code == 401

    mine = await board_api.client.patch(
        url, json={"title": "고친 제목"}, headers=board_api.auth(author)
    )
    assert mine.status_code == 200
    assert (mine.json()["title"], mine.json()["content"]) == ("고친 제목", "원래 내용")
    by_admin = await board_api.client.patch(
        comment_url, json={"content": "관리자 수정"}, headers=admin
    )
    assert by_admin.json()["content"] == "관리자 수정"
    # the write model answers at once, with a placeholder for a nickname not known yet
    detail = (await board_api.client.get(url)).json()
    assert (detail["title"], detail["comment_count"]) == ("고친 제목", 1)
    assert detail["author"] == {"id": str(author), "nickname": UNKNOWN_NICKNAME}

    assert (await board_api.client.delete(url, headers=admin)).status_code == 204
    assert (await board_api.client.get(url)).status_code == 404
    assert (await board_api.client.get(f"{url}/comments")).status_code == 404
    assert (
        await board_api.client.patch(url, json={"title": "y"}, headers=admin)
    ).status_code == 404
    assert (await board_api.client.delete(comment_url, headers=admin)).status_code == 404
    async with board_api.engine.connect() as conn:
        left = await conn.scalar(
            select(func.count()).select_from(comments).where(comments.c.deleted_at.is_(None))
        )
    assert left == 0  # the comments went with their post


async def test_an_idempotency_key_replay_returns_the_first_result(board_api: BoardStack) -> None:
    author = uuid.uuid4()
    free = await board_api.board_id("free")
    headers = {**board_api.auth(author), "Idempotency-Key": "create-post-1"}
    body = {"title": "한 번만", "content": "재시도해도 한 번"}

    first = await board_api.client.post(f"/api/boards/{free}/posts", json=body, headers=headers)
    retry = await board_api.client.post(f"/api/boards/{free}/posts", json=body, headers=headers)
    other_body = await board_api.client.post(
        f"/api/boards/{free}/posts", json={**body, "title": "다른 글"}, headers=headers
    )

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert other_body.status_code == 422
    assert await _count(board_api, posts) == 1
    # the same key from another caller is another request
    someone_else = {**board_api.auth(uuid.uuid4()), "Idempotency-Key": "create-post-1"}
    assert (
        await board_api.client.post(f"/api/boards/{free}/posts", json=body, headers=someone_else)
    ).status_code == 201
    assert await _count(board_api, posts) == 2

    comment_url = f"/api/posts/{first.json()['id']}/comments"
    comment_headers = {**board_api.auth(author), "Idempotency-Key": "comment-1"}
    c1 = await board_api.client.post(comment_url, json={"content": "댓글"}, headers=comment_headers)
    c2 = await board_api.client.post(comment_url, json={"content": "댓글"}, headers=comment_headers)
    assert (c1.status_code, c2.json()) == (201, c1.json())
    assert await _count(board_api, comments) == 1

    admin = {**board_api.auth(uuid.uuid4(), "ADMIN"), "Idempotency-Key": "board-1"}
    board_body = {"slug": "once", "name": "한 번"}
    b1 = await board_api.client.post("/api/boards", json=board_body, headers=admin)
    b2 = await board_api.client.post("/api/boards", json=board_body, headers=admin)
    assert (b1.status_code, b2.status_code, b2.json()) == (201, 201, b1.json())


async def test_no_malformed_request_gets_a_5xx(board_api: BoardStack) -> None:
    author = uuid.uuid4()
    user = board_api.auth(author)
    admin = board_api.auth(uuid.uuid4(), "ADMIN")
    free = await board_api.board_id("free")
    post = await board_api.write_post(author, "정상 글")
    comment = (
        await board_api.client.post(
            f"/api/posts/{post['id']}/comments", json={"content": "c"}, headers=user
        )
    ).json()
    p, c, missing = post["id"], comment["id"], str(uuid.uuid4())
    huge = "가" * 1_000_000

    cases: list[tuple[str, str, dict[str, Any], int]] = [
        # bad UUIDs in paths and queries
        ("GET", "/api/boards/not-a-uuid/posts", {}, 422),
        ("GET", "/api/posts/123", {}, 422),
        ("GET", f"/api/posts/{p}/comments/{c}x", {}, 405),
        ("PATCH", f"/api/posts/{p}/comments/zz", {"json": {"content": "x"}, "headers": user}, 422),
        ("GET", "/api/posts?author_id=nope", {}, 422),
        ("GET", f"/api/posts/{missing}", {}, 404),
        ("GET", f"/api/boards/{missing}/posts", {}, 404),
        (
            "POST",
            f"/api/boards/{missing}/posts",
            {"json": {"title": "t", "content": "c"}, "headers": user},
            404,
        ),
        (
            "POST",
            f"/api/posts/{missing}/comments",
            {"json": {"content": "c"}, "headers": user},
            404,
        ),
        ("DELETE", f"/api/posts/{p}/comments/{missing}", {"headers": user}, 404),
        # page and size
        ("GET", f"/api/boards/{free}/posts?page=0", {}, 422),
        ("GET", f"/api/boards/{free}/posts?size=101", {}, 422),
        ("GET", f"/api/boards/{free}/posts?size=-1", {}, 422),
        ("GET", f"/api/boards/{free}/posts?page=abc", {}, 422),
        ("GET", f"/api/boards/{free}/posts?page=99999999999999999999", {}, 422),
        ("GET", f"/api/boards/{free}/posts?page=1000000", {}, 200),
        ("GET", f"/api/posts/{p}/comments?size=0", {}, 422),
        # search text
        ("GET", f"/api/boards/{free}/posts?q=%00", {}, 422),
        ("GET", f"/api/boards/{free}/posts?q={'x' * 101}", {}, 422),
        ("GET", f"/api/boards/{free}/posts?q=%25%27%3B--", {}, 200),
        # bodies: limits, types, JSON
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"json": {"title": "", "content": "c"}, "headers": user},
            422,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"json": {"title": "   ", "content": "c"}, "headers": user},
            422,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"json": {"title": "t" * 201, "content": "c"}, "headers": user},
            422,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"json": {"title": "t", "content": "c" * 20001}, "headers": user},
            422,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"json": {"title": "t", "content": huge}, "headers": user},
            413,  # 3 MB: past the chassis input guard's 1 MiB bound on a buffered JSON body
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"json": {"title": 5, "content": ["c"]}, "headers": user},
            422,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"json": {"title": "a\x00b", "content": "c"}, "headers": user},
            422,
        ),
        ("POST", f"/api/boards/{free}/posts", {"json": ["title", "content"], "headers": user}, 422),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {
                "content": b'{"title": "t", "content": ',
                "headers": {**user, "content-type": "application/json"},
            },
            422,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {
                "content": b'{"title": "\\ud800", "content": "c"}',
                "headers": {**user, "content-type": "application/json"},
            },
            422,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"content": b"\xff\xfe", "headers": {**user, "content-type": "application/json"}},
            422,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {
                "json": {"title": "t", "content": "c"},
                "headers": {**user, "Idempotency-Key": "k" * 201},
            },
            422,
        ),
        ("PATCH", f"/api/posts/{p}", {"json": {"title": None, "content": 3}, "headers": user}, 422),
        ("PATCH", f"/api/posts/{p}", {"json": {"content": "x" * 20001}, "headers": user}, 422),
        (
            "POST",
            f"/api/posts/{p}/comments",
            {"json": {"content": "c" * 2001}, "headers": user},
            422,
        ),
        ("POST", f"/api/posts/{p}/comments", {"json": {"content": ""}, "headers": user}, 422),
        ("PATCH", f"/api/posts/{p}/comments/{c}", {"json": {}, "headers": user}, 422),
        (
            "POST",
            "/api/boards",
            {"json": {"slug": "Bad Slug!", "name": "n"}, "headers": admin},
            422,
        ),
        ("POST", "/api/boards", {"json": {"slug": "ok\n", "name": "n"}, "headers": admin}, 422),
        ("POST", "/api/boards", {"json": {"slug": "a" * 41, "name": "n"}, "headers": admin}, 422),
        (
            "POST",
            "/api/boards",
            {"json": {"slug": "fine", "name": "n" * 51}, "headers": admin},
            422,
        ),
        # tokens
        (
            "POST",
            f"/api/boards/{free}/posts",
            {
                "json": {"title": "t", "content": "c"},
                "headers": {"Authorization": "Bearer garbage"},
            },
            401,
        ),
        (
            "POST",
            f"/api/boards/{free}/posts",
            {"json": {"title": "t", "content": "c"}, "headers": {"Authorization": "Basic abc"}},
            401,
        ),
    ]
    posts_before = await _count(board_api, posts)

    answers = []
    for method, url, kwargs, _ in cases:
        response = await board_api.client.request(method, url, **kwargs)
        answers.append((method, url[:80], response.status_code))

    assert [a[2] for a in answers] == [expected for *_, expected in cases], answers
    assert all(status < 500 for *_, status in answers)
    assert await _count(board_api, posts) == posts_before
    untouched = (await board_api.client.get(f"/api/posts/{p}")).json()
    assert (untouched["title"], untouched["content"]) == ("정상 글", "본문")
