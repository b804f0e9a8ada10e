"""Integration-event handler: envelopes from board, qna and member events feed the activity projection."""

from __future__ import annotations

from collections.abc import Callable

from chassis.messaging.consumer import Handler
from chassis.messaging.envelope import Envelope
from chassis.metrics import PROJECTION_CHECKPOINT
from member.service_layer.activity import PROJECTION, project_event
from member.service_layer.ports import LogPosition
from member.service_layer.unit_of_work import MemberUnitOfWork


def activity_projector(uow_factory: Callable[[], MemberUnitOfWork], service: str) -> Handler:
    """A consumer handler; malformed bodies raise, so after retries they land in the DLQ."""

    async def handle(env: Envelope) -> None:
        position = LogPosition(env.topic, env.partition, env.offset) if env.offset >= 0 else None
        await project_event(
            uow_factory(), event_id=env.id, event_type=env.type, data=env.data, position=position
        )
        if position is not None:  # reported once committed
            PROJECTION_CHECKPOINT.labels(service, PROJECTION, env.topic, str(env.partition)).set(
                env.offset + 1
            )

    return handle
