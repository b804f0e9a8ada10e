"""Saga definition: answer acceptance (답변 채택), started by ``POST /api/questions/{qid}/answers/{aid}/accept``.

Data: ``{question_id, answer_id, asker_id, answerer_id, bounty}`` from qna's pre-check;
ReserveAcceptance's result ``{bounty, asker_id, answerer_id}`` (read under qna's lock)
replaces them before TransferPoints. At most one acceptance per question runs at a time.

Step kinds (docs/sagas.md; Richardson, *Microservices Patterns* ch. 4):

- ``reserve-acceptance`` is compensatable: the reservation (a semantic lock) is cancelled when
  the transfer is refused, or when the reservation itself times out.
- ``transfer-points`` is the pivot: once the bounty moved, the acceptance goes through. A
  refusal (balance short, answerer not ACTIVE) cancels the reservation; a timeout re-sends the
  same command until member answers. Nothing refunds it, so there is no RefundPoints step.
- ``confirm-acceptance`` is retriable: the question is reserved for this saga, so it cannot be
  refused for a business reason; a timeout or a refusal (qna failing) is retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from saga.definition import SagaDefinition, fields


def points(data: Mapping[str, Any]) -> dict[str, Any]:
    """The bounty moves from the asker to the answerer."""
    return {
        "from_member_id": data["asker_id"],
        "to_member_id": data["answerer_id"],
        "amount": data["bounty"],
        "question_id": data["question_id"],
    }


ANSWER_ACCEPTANCE = (
    SagaDefinition("answer-acceptance", exclusive_key="question_id")
    # OPEN -> ACCEPTING: no edit, delete or second accept meanwhile.
    .compensatable_step("reserve-acceptance")
    .invoke("qna", "ReserveAcceptance", payload=fields("question_id", "answer_id", "asker_id"))
    .with_compensation("CancelAcceptance", payload=fields("question_id", "answer_id"))
    # Go/no-go: refused when the asker's balance is short or the answerer is not ACTIVE.
    .pivot_step("transfer-points")
    .invoke("member", "TransferPoints", payload=points)
    # ACCEPTING -> RESOLVED; the answer is marked accepted.
    .retriable_step("confirm-acceptance")
    .invoke("qna", "ConfirmAcceptance", payload=fields("question_id", "answer_id"))
    .build()
)
