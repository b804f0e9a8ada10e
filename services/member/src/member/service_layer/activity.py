"""CQRS projection: integration events from board, qna and member fold into ``member_activity``.

Each counter is the total of a set of items (member.domain.activity), so the read model is the
same whatever the order and multiplicity of the events (docs/CONVENTIONS.md "Failures of
consumers"): an event replayed from the DLQ after newer ones is merged, a duplicate changes nothing.
The inbox (a redelivered event id) and the checkpoint (next offset per topic partition, in the same
transaction, which drops what a rebuild already included) only spare that work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chassis.messaging.failures import PermanentFailure
from member.domain.activity import MalformedEvent, items_for
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
    """Apply one event; True if it concerned the read model and was not skipped as already seen.
    Raises ``PermanentFailure`` for a body it cannot read: no retry can fix it, so the consumer
    dead-letters it at once."""
    try:
        items = items_for(event_type, data)
    except MalformedEvent as exc:
        raise PermanentFailure(str(exc)) from exc
    applied = False
    async with uow:
        await uow.activity.exclude_rebuild()
        if position is not None and position.offset < await uow.activity.next_offset(
            position.topic, position.partition
        ):
            return False
        if items and await uow.first_delivery(CONSUMER, event_id):
            await uow.activity.apply(items)
            applied = True
        if position is not None:
            await uow.activity.advance(position)
        await uow.commit()
    return applied
