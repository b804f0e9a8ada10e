"""Idempotent consumer: ``board.events`` and ``member.events`` feed the author copy and the read model.

``MemberWithdrawalStarted`` / ``MemberWithdrawalCancelled`` set and lift the semantic lock on the
member's author row (``chassis.author_lock``), so writes are refused from step 1 of the
withdrawal, not only from AnonymizeAuthor; ``MemberWithdrawn`` refuses them for good.

One consumer (group ``board-projector``) handles both topics, so a nickname and the summaries
showing it change in the same transaction, and a post projected later reads the nickname that
is current. The inbox record, the effect and the projection checkpoint commit together; after
the commit, the cached first pages of the boards whose list changed are invalidated.
"""

from __future__ import annotations

from collections.abc import Callable

from board.adapters.first_page_cache import FirstPageCache
from board.adapters.tables import LIVE_SUMMARIES
from board.service_layer import handlers
from board.service_layer.projector import (
    MEMBER_NAMED,
    MEMBER_WITHDRAWAL_CANCELLED,
    MEMBER_WITHDRAWAL_STARTED,
    MEMBER_WITHDRAWN,
    MemberNamedView,
    MemberWithdrawalView,
    MemberWithdrawnView,
    PostSummaryProjector,
    save_checkpoint,
)
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.messaging.envelope import Envelope
from chassis.metrics import PROJECTION_CHECKPOINT

CONSUMER = "board-projector"
TOPICS = ["board.events", "member.events"]


class EventConsumer:
    def __init__(
        self,
        uow_factory: Callable[[], BoardUnitOfWork],
        projector: PostSummaryProjector,
        first_pages: FirstPageCache,
        *,
        service: str,
    ) -> None:
        self.uow_factory = uow_factory
        self.projector = projector
        self.first_pages = first_pages
        self.service = service

    async def handle(self, env: Envelope) -> None:
        async with self.uow_factory() as uow:
            if not await uow.first_delivery(CONSUMER, env.id):
                return  # a duplicate: its effect is already committed
            stale = False
            if env.type in MEMBER_NAMED:
                named = MemberNamedView.model_validate(env.data)
                stale = not await handlers.note_nickname(
                    uow, named.member_id, named.nickname, named.profile_version
                )
            elif env.type == MEMBER_WITHDRAWN:
                gone = MemberWithdrawnView.model_validate(env.data)
                await handlers.note_withdrawal(uow, gone.member_id)
            elif env.type == MEMBER_WITHDRAWAL_STARTED:
                going = MemberWithdrawalView.model_validate(env.data)
                await handlers.note_withdrawal_started(uow, going.member_id, going.saga_id)
            elif env.type == MEMBER_WITHDRAWAL_CANCELLED:
                staying = MemberWithdrawalView.model_validate(env.data)
                await handlers.note_withdrawal_cancelled(uow, staying.member_id, staying.saga_id)
            # an older nickname than the copy's changes neither the copy nor the list
            changed = frozenset() if stale else await self.projector.apply(uow.session, env)
            await save_checkpoint(uow.session, LIVE_SUMMARIES, env)
            await uow.commit()
        await self.first_pages.invalidate_committed(changed)
        if env.offset >= 0:
            PROJECTION_CHECKPOINT.labels(
                self.service, LIVE_SUMMARIES, env.topic, str(env.partition)
            ).set(env.offset)
