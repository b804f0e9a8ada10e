"""Idempotent consumer: ``board.events`` and ``member.events`` feed the author copy and the read model.

``MemberWithdrawalStarted`` / ``MemberWithdrawalCancelled`` set and lift the semantic lock on the
member's author row (``chassis.author_lock``), so writes are refused from step 1 of the
withdrawal, not only from AnonymizeAuthor; ``MemberWithdrawn`` refuses them for good.

One consumer (group ``board-projector``) handles both topics, so a nickname and the summaries
showing it change in the same transaction, and a post projected later reads the nickname that
is current. The author copy, then ``chassis.read_model.project`` (the inbox record, the
projection and its checkpoint) commit together; after the commit, the cached first pages of the
boards whose list changed are invalidated and the checkpoint gauge is set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import cast

from board.adapters.first_page_cache import FirstPageCache
from board.service_layer import handlers
from board.service_layer.projector import (
    MEMBER_NAMED,
    MEMBER_WITHDRAWAL_CANCELLED,
    MEMBER_WITHDRAWAL_STARTED,
    MEMBER_WITHDRAWN,
    READ_MODEL,
    Boards,
    MemberNamedView,
    MemberWithdrawalView,
    MemberWithdrawnView,
)
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.messaging.envelope import Envelope
from chassis.read_model import project, report_checkpoint

CONSUMER = READ_MODEL.consumer
TOPICS = list(READ_MODEL.topics)


async def _nothing(*_: object) -> Boards:
    return frozenset()


#: For an event the author copy found stale: the inbox record and the checkpoint as for any
#: event, but an older nickname than the copy's changes neither the copy nor the list.
_STALE = dataclasses.replace(READ_MODEL, apply=_nothing)


async def _copy_author(uow: BoardUnitOfWork, env: Envelope) -> bool:
    """Apply a member event to the author copy (the write side's ``authors``); False when the
    event is older than the copy. Raises ``pydantic.ValidationError`` for a malformed payload."""
    if env.type in MEMBER_NAMED:
        named = MemberNamedView.model_validate(env.data)
        return await handlers.note_nickname(
            uow, named.member_id, named.nickname, named.profile_version
        )
    if env.type == MEMBER_WITHDRAWN:
        gone = MemberWithdrawnView.model_validate(env.data)
        await handlers.note_withdrawal(uow, gone.member_id)
    elif env.type == MEMBER_WITHDRAWAL_STARTED:
        going = MemberWithdrawalView.model_validate(env.data)
        await handlers.note_withdrawal_started(uow, going.member_id, going.saga_id)
    elif env.type == MEMBER_WITHDRAWAL_CANCELLED:
        staying = MemberWithdrawalView.model_validate(env.data)
        await handlers.note_withdrawal_cancelled(uow, staying.member_id, staying.saga_id)
    return True


class EventConsumer:
    """The worker's handler of ``TOPICS`` (group ``CONSUMER``)."""

    def __init__(
        self,
        uow_factory: Callable[[], BoardUnitOfWork],
        first_pages: FirstPageCache,
        *,
        service: str,
    ) -> None:
        self.uow_factory = uow_factory
        self.first_pages = first_pages
        self.service = service

    async def handle(self, env: Envelope) -> None:
        async with self.uow_factory() as uow:
            # the author copy first: the projection reads it (the byline of a new summary)
            current = await _copy_author(uow, env)
            changed = await project(uow, READ_MODEL if current else _STALE, env)
            if changed is None:
                return  # a duplicate: its effect is committed; this one rolls back, copy and all
            await uow.commit()
        await self.first_pages.invalidate_committed(cast(Boards, changed))
        report_checkpoint(self.service, READ_MODEL.name, env)
