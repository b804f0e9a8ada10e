"""CQRS projection: integration events from board, qna and member fold into ``member_activity``.

Idempotent twice over: the inbox drops a redelivered event id, and the checkpoint (next offset
per topic partition, in the same transaction) drops what a rebuild already included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from member.domain.activity import deltas_for
from member.service_layer.ports import LogPosition, UnitOfWork

PROJECTION = "member_activity"
CONSUMER = "member-activity"
SOURCE_TOPICS = ("board.events", "qna.events", "member.events")


async def project_event(
    uow: UnitOfWork,
    *,
    event_id: str,
    event_type: str,
    data: Mapping[str, Any],
    position: LogPosition | None = None,
) -> bool:
    """Apply one event; True if it changed a counter."""
    deltas = deltas_for(event_type, data)
    applied = False
    async with uow:
        await uow.activity.exclude_rebuild()
        if position is not None and position.offset < await uow.activity.next_offset(
            position.topic, position.partition
        ):
            return False
        if deltas and await uow.first_delivery(CONSUMER, event_id):
            await uow.activity.apply(deltas)
            applied = True
        if position is not None:
            await uow.activity.advance(position)
        await uow.commit()
    return applied
