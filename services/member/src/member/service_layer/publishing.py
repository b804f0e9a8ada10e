"""Transactional outbox (producer side): domain events become integration events on ``member.events``."""

from __future__ import annotations

from collections.abc import Iterable

from chassis.messaging.envelope import event_data
from member.domain.events import Event
from member.service_layer.ports import UnitOfWork

EVENTS_TOPIC = "member.events"


async def publish_events(uow: UnitOfWork, events: Iterable[Event]) -> None:
    """Stage events in the outbox of the current transaction (they leave only if it commits)."""
    for event in events:
        await uow.publish(EVENTS_TOPIC, event.name, key=event.key, data=event_data(event))
