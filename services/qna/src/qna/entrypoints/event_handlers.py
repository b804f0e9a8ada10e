"""Idempotent consumers: the worker's handlers of member.events (author copy) and of the read model's topics.

qna has two consumers of ``member.events``, each with its own group and inbox:

- ``qna-authors`` (:func:`member_events_handler`) keeps the write model's copy of authors
  (nickname, withdrawn, semantic lock). ``MemberWithdrawalStarted`` / ``MemberWithdrawalCancelled``
  set and lift the semantic lock on the member's author row (``chassis.author_lock``), so writes
  are refused from step 1 of the withdrawal, not only from RetireAuthor; ``MemberWithdrawn``
  refuses them for good. Thin: it reads its own view of the member payloads and calls the
  service layer, which records the event id in the inbox in the same transaction as the change.
- ``qna-projector`` (:func:`read_model_handler`) projects qna.events and member.events into the
  read model, which keeps its own copy of nicknames, so a rebuild needs the two topics alone
  (board's one consumer, by contrast, reads the write side's author copy).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, Field

from chassis.messaging.envelope import Envelope
from chassis.read_model import live_projector
from qna.service_layer import handlers
from qna.service_layer.projector import READ_MODEL
from qna.service_layer.unit_of_work import QnaUnitOfWork


class MemberNamedEvent(BaseModel):
    """MemberRegistered / MemberProfileChanged, as qna reads them: only the fields it uses
    (others are ignored)."""

    member_id: uuid.UUID
    nickname: str
    #: 0 for an event from before member versioned its profile
    profile_version: int = 0


class MemberWithdrawnEvent(BaseModel):
    """MemberWithdrawn: the member whose copy is erased and refused for good."""

    member_id: uuid.UUID


class MemberWithdrawalEvent(BaseModel):
    """MemberWithdrawalStarted / MemberWithdrawalCancelled: the saga whose mark it sets or lifts."""

    member_id: uuid.UUID
    saga_id: str = Field(min_length=1, max_length=64)


def member_events_handler(
    uow_factory: Callable[[], QnaUnitOfWork],
) -> Callable[[Envelope], Awaitable[None]]:
    async def handle(env: Envelope) -> None:
        if env.type in ("MemberRegistered", "MemberProfileChanged"):
            named = MemberNamedEvent.model_validate(env.data)
            await handlers.note_nickname(
                uow_factory(), env.id, named.member_id, named.nickname, named.profile_version
            )
        elif env.type == "MemberWithdrawn":
            gone = MemberWithdrawnEvent.model_validate(env.data)
            await handlers.note_withdrawal(uow_factory(), env.id, gone.member_id)
        elif env.type == "MemberWithdrawalStarted":
            going = MemberWithdrawalEvent.model_validate(env.data)
            await handlers.note_withdrawal_started(
                uow_factory(), env.id, going.member_id, going.saga_id
            )
        elif env.type == "MemberWithdrawalCancelled":
            staying = MemberWithdrawalEvent.model_validate(env.data)
            await handlers.note_withdrawal_cancelled(
                uow_factory(), env.id, staying.member_id, staying.saga_id
            )

    return handle


def read_model_handler(
    uow_factory: Callable[[], QnaUnitOfWork], service: str
) -> Callable[[Envelope], Awaitable[None]]:
    """The live projector of ``READ_MODEL``: one transaction per event (the rebuild lock shared,
    the inbox, the projection, the checkpoint: ``chassis.read_model.project``), then the gauge
    ``projection_checkpoint_offset`` := the offset just applied."""
    return live_projector(uow_factory, READ_MODEL, service)
