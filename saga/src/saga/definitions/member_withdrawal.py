"""Saga definition: member withdrawal (회원 탈퇴), started by ``DELETE /api/members/me``.

Data: ``{member_id}``. At most one withdrawal per member runs at a time.
"""

from __future__ import annotations

from saga.definition import SagaDefinition, fields

MEMBER_WITHDRAWAL = (
    SagaDefinition("member-withdrawal", exclusive_key="member_id")
    # ACTIVE -> WITHDRAWING: logins and refreshes are refused from now on.
    .step("start-withdrawal")
    .invoke("member", "StartWithdrawal", payload=fields("member_id"))
    .with_compensation("CancelWithdrawal", payload=fields("member_id"))
    # Posts and comments show "탈퇴한 회원" and no author id.
    .step("anonymize-author")
    .invoke("board", "AnonymizeAuthor", payload=fields("member_id"))
    .with_compensation("RestoreAuthor", payload=fields("member_id"))
    # OPEN questions are closed and content anonymized; refused while a question is ACCEPTING.
    .step("retire-author")
    .invoke("qna", "RetireAuthor", payload=fields("member_id"))
    .with_compensation("RestoreAuthor", payload=fields("member_id"))
    # The pivot: PII erased, WITHDRAWN, refresh tokens revoked. Nothing undoes it.
    .step("complete-withdrawal")
    .invoke("member", "CompleteWithdrawal", payload=fields("member_id"))
    .build()
)
