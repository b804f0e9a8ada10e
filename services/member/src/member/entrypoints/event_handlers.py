"""Idempotent consumer: board, qna and member integration events feed the ``member_activity`` read model."""

from __future__ import annotations

from collections.abc import Callable

from chassis.messaging.consumer import Handler
from chassis.read_model import live_projector
from member.service_layer.projector import READ_MODEL
from member.service_layer.unit_of_work import MemberUnitOfWork


def activity_projector(uow_factory: Callable[[], MemberUnitOfWork], service: str) -> Handler:
    """A consumer handler (group ``member-activity``): the inbox record, the projection and the
    checkpoint commit together, then the gauge (``chassis.read_model.live_projector``). A
    malformed body raises ``PermanentFailure``, so it is dead-lettered at once."""
    return live_projector(uow_factory, READ_MODEL, service)
