"""Transactional outbox (producer side): domain events become integration events on ``member.events``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Iterable
from typing import Any

from member.domain.events import Event
from member.service_layer.ports import UnitOfWork

EVENTS_TOPIC = "member.events"


def _json_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def event_body(event: Event) -> dict[str, Any]:
    """The CloudEvent data: the event's fields, ids as strings, times in ISO 8601."""
    return {f.name: _json_value(getattr(event, f.name)) for f in dataclasses.fields(event)}


async def publish_events(uow: UnitOfWork, events: Iterable[Event]) -> None:
    """Stage events in the outbox of the current transaction (they leave only if it commits)."""
    for event in events:
        await uow.publish(EVENTS_TOPIC, event.name, key=event.key, data=event_body(event))
