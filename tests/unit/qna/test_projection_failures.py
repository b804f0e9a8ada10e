"""A body the question-list projector cannot read is a permanent failure: dead-lettered at once."""

from __future__ import annotations

import pytest

from chassis.messaging.envelope import Envelope
from chassis.messaging.failures import Failure, PermanentFailure, classify
from qna.service_layer.projector import _parse


def test_an_unreadable_answer_event_is_a_permanent_failure() -> None:
    env = Envelope.new("AnswerPosted", "qna", {"question_id": "not-a-uuid"}, key="q")
    with pytest.raises(PermanentFailure) as raised:
        _parse(env)
    assert classify(raised.value) is Failure.PERMANENT
