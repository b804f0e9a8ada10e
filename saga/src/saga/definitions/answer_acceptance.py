"""Saga definition: answer acceptance (답변 채택), started by ``POST /api/questions/{qid}/answers/{aid}/accept``.

Data: ``{question_id, answer_id, asker_id, answerer_id, bounty}`` from qna's pre-check;
ReserveAcceptance's result ``{bounty, asker_id, answerer_id}`` (read under qna's lock)
replaces them before TransferPoints. At most one acceptance per question runs at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from saga.definition import SagaDefinition, fields


def points(data: Mapping[str, Any]) -> dict[str, Any]:
    """The bounty moves from the asker to the answerer (RefundPoints moves it back)."""
    return {
        "from_member_id": data["asker_id"],
        "to_member_id": data["answerer_id"],
        "amount": data["bounty"],
        "question_id": data["question_id"],
    }


ANSWER_ACCEPTANCE = (
    SagaDefinition("answer-acceptance", exclusive_key="question_id")
    # OPEN -> ACCEPTING: no edit, delete or second accept meanwhile.
    .step("reserve-acceptance")
    .invoke("qna", "ReserveAcceptance", payload=fields("question_id", "answer_id", "asker_id"))
    .with_compensation("CancelAcceptance", payload=fields("question_id", "answer_id"))
    # Refused when the asker's balance is short or the answerer is not ACTIVE.
    .step("transfer-points")
    .invoke("member", "TransferPoints", payload=points)
    .with_compensation("RefundPoints", payload=points)
    # ACCEPTING -> RESOLVED; the answer is marked accepted.
    .step("confirm-acceptance")
    .invoke("qna", "ConfirmAcceptance", payload=fields("question_id", "answer_id"))
    .build()
)
