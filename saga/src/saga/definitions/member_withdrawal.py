"""Saga definition: member withdrawal (회원 탈퇴), started by ``DELETE /api/members/me``.

Data: ``{member_id}``. At most one withdrawal per member runs at a time, and a member whose
withdrawal COMPLETED cannot start another (``once_per_key``: 409, no saga row); after a
COMPENSATED one the member may withdraw again.

Step kinds (docs/sagas.md; Richardson, *Microservices Patterns* ch. 4): the first three steps are
compensatable (a refusal or a timeout undoes them in reverse); ``complete-withdrawal`` is the
pivot: it erases personal data, so nothing can undo it. A refusal of it still compensates the
three steps before it; a timeout re-sends it until member answers, so an erased account never
has its questions re-opened by a compensation.
"""

from __future__ import annotations

from saga.definition import SagaDefinition, fields

MEMBER_WITHDRAWAL = (
    SagaDefinition("member-withdrawal", exclusive_key="member_id", once_per_key=True)
    # ACTIVE -> WITHDRAWING: logins and refreshes are refused from now on.
    .compensatable_step("start-withdrawal")
    .invoke("member", "StartWithdrawal", payload=fields("member_id"))
    .with_compensation("CancelWithdrawal", payload=fields("member_id"))
    # Posts and comments show "탈퇴한 회원" and no author id.
    .compensatable_step("anonymize-author")
    .invoke("board", "AnonymizeAuthor", payload=fields("member_id"))
    .with_compensation("RestoreAuthor", payload=fields("member_id"))
    # OPEN questions are closed and content anonymized; refused while a question is ACCEPTING.
    .compensatable_step("retire-author")
    .invoke("qna", "RetireAuthor", payload=fields("member_id"))
    .with_compensation("RestoreAuthor", payload=fields("member_id"))
    # PII erased, WITHDRAWN, refresh tokens revoked. Nothing undoes it.
    .pivot_step("complete-withdrawal")
    .invoke("member", "CompleteWithdrawal", payload=fields("member_id"))
    .build()
)
