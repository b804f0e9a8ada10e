"""Bad input is refused with a 422 problem and changes nothing stored (board, through its app)."""

from __future__ import annotations

import json
import uuid

import pytest

from board.adapters.tables import comments, posts
from tests.integration.board.harness import BoardStack
from tests.support.refusals import LONE_SURROGATE, NUL, assert_refused, count_rows, raw_json

pytestmark = pytest.mark.integration

INT4_PAST = 2**31
INT8_PAST = 2**63


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("field", ["title", "content"])
async def test_a_post_with_unstorable_text_is_refused(
    board_api: BoardStack, field: str, bad: str
) -> None:
    """Text a store cannot take: NUL or a lone surrogate in a post's title or content."""
    author = uuid.uuid4()
    await board_api.write_post(author, "an existing post")
    before = await count_rows(board_api.engine, posts)
    values = {"title": "title", "content": "content"}
    values[field] = "a{bad}b"
    template = json.dumps(values)
    response = await board_api.client.post(
        f"/api/boards/{await board_api.board_id('free')}/posts",
        **raw_json(template, bad, board_api.auth(author)),
    )
    assert_refused(response, "body", field)
    assert await count_rows(board_api.engine, posts) == before


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
async def test_a_comment_with_unstorable_text_is_refused(board_api: BoardStack, bad: str) -> None:
    """Text a store cannot take: NUL or a lone surrogate in a comment's content."""
    author = uuid.uuid4()
    post = await board_api.write_post(author, "a post to comment on")
    before = await count_rows(board_api.engine, comments)
    response = await board_api.client.post(
        f"/api/posts/{post['id']}/comments",
        **raw_json('{"content":"a{bad}b"}', bad, board_api.auth(author)),
    )
    assert_refused(response, "body", "content")
    assert await count_rows(board_api.engine, comments) == before


async def test_nul_in_the_search_query_is_refused(board_api: BoardStack) -> None:
    """Text a store cannot take: NUL in the ``q`` query parameter of a post list."""
    board_id = await board_api.board_id("free")
    response = await board_api.client.get(f"/api/boards/{board_id}/posts", params={"q": "a\x00"})
    assert_refused(response, "query", "q")


async def test_nul_in_the_idempotency_key_is_refused(board_api: BoardStack) -> None:
    """Text a store cannot take: the Idempotency-Key header is stored in PostgreSQL."""
    author = uuid.uuid4()
    before = await count_rows(board_api.engine, posts)
    response = await board_api.client.post(
        f"/api/boards/{await board_api.board_id('free')}/posts",
        json={"title": "title", "content": "content"},
        headers={**board_api.auth(author), "Idempotency-Key": "key\x00"},
    )
    assert_refused(response, "header", "idempotency-key")
    assert await count_rows(board_api.engine, posts) == before


@pytest.mark.parametrize("number", [INT4_PAST, INT8_PAST, -INT8_PAST - 1, 10**30])
@pytest.mark.parametrize("name", ["page", "size"])
async def test_a_page_number_out_of_range_is_refused(
    board_api: BoardStack, name: str, number: int
) -> None:
    """Number out of column range: ``page`` and ``size`` past int4 and int8 (the offset they
    make is bounded: page ≤ 1,000,000 and size ≤ 100 keep it under 10⁸)."""
    response = await board_api.client.get("/api/posts", params={name: number})
    assert_refused(response, "query", name)
