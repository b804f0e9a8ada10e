"""Idempotent consumer: board, qna and member integration events feed the ``member_activity`` read model."""

from __future__ import annotations

from collections.abc import Callable

from chassis.messaging.consumer import Handler
from chassis.messaging.envelope import Envelope
from chassis.read_model import project, report_checkpoint
from member.service_layer.projector import READ_MODEL
from member.service_layer.unit_of_work import MemberUnitOfWork


def activity_projector(uow_factory: Callable[[], MemberUnitOfWork], service: str) -> Handler:
    """A consumer handler (group ``member-activity``): the inbox record, the projection and the
    checkpoint commit together (``chassis.read_model.project``); the gauge is set once
    committed. A malformed body raises ``PermanentFailure``, so it is dead-lettered at once."""

    async def handle(env: Envelope) -> None:
        async with uow_factory() as uow:
            await project(uow, READ_MODEL, env)
            await uow.commit()
        report_checkpoint(service, READ_MODEL.name, env)

    return handle
