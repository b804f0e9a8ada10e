"""The post list's body rendered without re-validation is byte for byte the response model's."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, NamedTuple

from board.entrypoints.schemas import PostsPublic
from board.views import _summary
from chassis.app import json_response, model_response


class _Row(NamedTuple):
    post_id: uuid.UUID
    board_id: uuid.UUID
    title: str
    author_id: uuid.UUID | None
    author_nickname: str
    comment_count: int
    view_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


def _rows() -> list[Any]:
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    return [
        _Row(
            uuid.uuid4(), uuid.uuid4(), 'say "hi" \\ <b>', uuid.uuid4(), "닉네임", 3, 2**40, at, at
        ),
        # a withdrawn author (NULL id), whole seconds, another zone
        _Row(
            uuid.uuid4(),
            uuid.uuid4(),
            "제목",
            None,
            "탈퇴한 회원",
            0,
            0,
            at.replace(microsecond=0),
            at.astimezone(dt.timezone(dt.timedelta(hours=9))),
        ),
    ]


def test_the_list_body_is_the_response_models() -> None:
    data = {"items": [_summary(r) for r in _rows()], "total": 2, "page": 1, "size": 20}
    assert json_response(data).body == model_response(PostsPublic, data).body
