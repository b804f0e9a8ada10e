"""The question-summary projector compiles nothing per event: its merges are compiled once per kind of event (``chassis.db.CompiledWrite``)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from chassis.messaging.envelope import Envelope
from qna.config import SERVICE_ROOT
from qna.service_layer.projector import READ_MODEL
from qna.service_layer.unit_of_work import QnaUnitOfWork
from tests.support.compiles import compiled_by_projecting

pytestmark = pytest.mark.integration


def _history(i: int) -> list[Envelope]:
    """A question asked, answered, accepted, closed and deleted."""
    question, author, answer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = dt.datetime.now(dt.UTC).isoformat()
    base = {"question_id": str(question), "occurred_at": now}
    asked = {"author_id": str(author), "title": f"q{i}", "bounty": 10, "status": "OPEN"}
    events = [
        ("QuestionAsked", {**base, **asked, "version": 1, "created_at": now}),
        ("AnswerPosted", {**base, "version": 1, "answer_id": str(answer)}),
        ("AnswerAccepted", {**base, "version": 2, "answer_id": str(answer)}),
        ("QuestionClosed", {**base, "version": 3}),
        ("QuestionDeleted", {**base, "version": 4}),
    ]
    return [
        Envelope.new(kind, "qna", data, key=str(question), topic="qna.events", offset=10 * i + n)
        for n, (kind, data) in enumerate(events)
    ]


async def test_a_question_history_compiles_nothing_after_the_first(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    compiled = await compiled_by_projecting(
        monkeypatch, database_url, SERVICE_ROOT, READ_MODEL, QnaUnitOfWork, _history
    )
    assert compiled == []
