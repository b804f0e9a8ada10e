"""The question list's body rendered without re-validation is byte for byte the response model's."""

from __future__ import annotations

import datetime as dt
import uuid

from chassis.app import json_response, model_response
from qna.entrypoints.schemas import QuestionsPublic
from qna.views import author_view


def test_the_list_body_is_the_response_models() -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    items = [
        {
            "id": uuid.uuid4(),
            "title": 'say "hi" \\ <b> 질문',
            "author": author_view(uuid.uuid4(), "닉네임", False),
            "bounty": 50,
            "status": "ACCEPTING",
            "answer_count": 2,
            "accepted_answer_id": uuid.uuid4(),
            "created_at": at,
        },
        {
            "id": uuid.uuid4(),
            "title": "t",
            "author": author_view(None, None, None),
            "bounty": 0,
            "status": "OPEN",
            "answer_count": 0,
            "accepted_answer_id": None,
            "created_at": at.replace(microsecond=0).astimezone(dt.timezone(dt.timedelta(hours=9))),
        },
    ]
    data = {"items": items, "total": 2, "page": 1, "size": 20}
    assert json_response(data).body == model_response(QuestionsPublic, data).body
