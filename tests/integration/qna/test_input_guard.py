"""Bad input is refused with a 422 problem and changes nothing stored (qna, through its app)."""

from __future__ import annotations

import json

import pytest

from qna.adapters.tables import question_comments, questions
from tests.integration.qna.harness import QnaHarness
from tests.support.refusals import LONE_SURROGATE, NUL, assert_refused, count_rows, raw_json

pytestmark = pytest.mark.integration

INT4_PAST = 2**31
INT8_PAST = 2**63


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("field", ["title", "content"])
async def test_a_question_with_unstorable_text_is_refused(
    qna: QnaHarness, field: str, bad: str
) -> None:
    """Text a store cannot take: NUL or a lone surrogate in a question's title or content."""
    asker = qna.member()
    await qna.ask(asker)
    before = await count_rows(qna.engine, questions)
    values: dict[str, object] = {"title": "title", "content": "content", "bounty": 0}
    values[field] = "a{bad}b"
    template = json.dumps(values)
    response = await qna.client.post("/api/questions", **raw_json(template, bad, asker.headers))
    assert_refused(response, "body", field)
    assert await count_rows(qna.engine, questions) == before


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
async def test_a_comment_with_unstorable_text_is_refused(qna: QnaHarness, bad: str) -> None:
    """Text a store cannot take: NUL or a lone surrogate in a question comment."""
    asker = qna.member()
    question = await qna.ask(asker)
    before = await count_rows(qna.engine, question_comments)
    response = await qna.client.post(
        f"/api/questions/{question['id']}/comments",
        **raw_json('{"content":"a{bad}b"}', bad, asker.headers),
    )
    assert_refused(response, "body", "content")
    assert await count_rows(qna.engine, question_comments) == before


async def test_nul_in_the_search_query_is_refused(qna: QnaHarness) -> None:
    """Text a store cannot take: NUL in the ``q`` query parameter of the question list."""
    response = await qna.client.get("/api/questions", params={"q": "a\x00"})
    assert_refused(response, "query", "q")


async def test_nul_in_the_idempotency_key_is_refused(qna: QnaHarness) -> None:
    """Text a store cannot take: the Idempotency-Key header is stored in PostgreSQL."""
    asker = qna.member()
    before = await count_rows(qna.engine, questions)
    response = await qna.client.post(
        "/api/questions",
        json={"title": "title", "content": "content"},
        headers={**asker.headers, "Idempotency-Key": "\x00"},
    )
    assert_refused(response, "header", "idempotency-key")
    assert await count_rows(qna.engine, questions) == before


@pytest.mark.parametrize("bounty", [INT4_PAST, INT8_PAST, -INT8_PAST - 1, 10**30])
async def test_a_bounty_out_of_range_is_refused(qna: QnaHarness, bounty: int) -> None:
    """Number out of column range: a bounty past int4 and int8 (the column is int4; the
    contract's bound is 0..1000)."""
    asker = qna.member()
    question = await qna.ask(asker)
    before = await count_rows(qna.engine, questions)
    created = await qna.client.post(
        "/api/questions",
        json={"title": "title", "content": "content", "bounty": bounty},
        headers=asker.headers,
    )
    assert_refused(created, "body", "bounty")
    edited = await qna.client.patch(
        f"/api/questions/{question['id']}", json={"bounty": bounty}, headers=asker.headers
    )
    assert_refused(edited, "body", "bounty")
    assert await count_rows(qna.engine, questions) == before
    assert (await qna.detail(question["id"]))["bounty"] == 0


@pytest.mark.parametrize("number", [INT4_PAST, INT8_PAST, 10**30])
@pytest.mark.parametrize("name", ["page", "size"])
async def test_a_page_number_out_of_range_is_refused(
    qna: QnaHarness, name: str, number: int
) -> None:
    """Number out of column range: ``page`` and ``size`` past int4 and int8."""
    response = await qna.client.get("/api/questions", params={name: number})
    assert_refused(response, "query", name)
