"""Event envelope: CloudEvents 1.0 in Kafka binary mode (``ce_*`` headers, JSON body, aggregate id as key)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord
from pydantic_core import to_jsonable_python

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
#: Headers that belong to the envelope itself; anything else (traceparent, dlq_*) is extension data.
_CE_HEADERS = {
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "content-type",
}


def event_data(event: object) -> dict[str, Any]:
    """The JSON body of a domain event (a dataclass): its fields, with ids as strings, times in
    ISO 8601 and enums by value. Domain events stay plain standard-library dataclasses."""
    data = to_jsonable_python(event)
    if not isinstance(data, dict):
        raise TypeError(f"a domain event is a dataclass, not {type(event).__name__}")
    return data


class MalformedMessage(ValueError):
    """The record is not a CloudEvent we can read; it goes straight to the DLQ."""


@dataclass(frozen=True)
class Envelope:
    """One CloudEvent: an integration event, a saga command or a saga reply."""

    id: str
    type: str
    source: str
    data: dict[str, Any]
    subject: str | None = None
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    key: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    topic: str = ""
    partition: int = -1
    offset: int = -1

    @classmethod
    def new(
        cls, event_type: str, source: str, data: Mapping[str, Any], key: str, **kw: Any
    ) -> Envelope:
        return cls(
            id=str(uuid.uuid4()),
            type=event_type,
            source=source,
            data=dict(data),
            subject=key,
            key=key,
            **kw,
        )


def to_kafka(env: Envelope) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """Encode as (key, value, headers) in CloudEvents Kafka binary content mode."""
    headers: list[tuple[str, bytes]] = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", env.id.encode()),
        ("ce_source", env.source.encode()),
        ("ce_type", env.type.encode()),
        ("ce_time", env.time.isoformat().encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if env.subject:
        headers.append(("ce_subject", env.subject.encode()))
    headers.extend((k, v.encode()) for k, v in env.extensions.items())
    value = json.dumps(env.data, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return (env.key.encode() if env.key else None), value, headers


def headers_dict(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (headers or [])}


def from_consumer_record(record: ConsumerRecord[bytes, bytes]) -> Envelope:
    """``from_record`` for a record as aiokafka delivers it."""
    return from_record(
        record.topic, record.partition, record.offset, record.key, record.value, record.headers
    )


def from_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
) -> Envelope:
    """Decode a Kafka record; raises ``MalformedMessage`` when it is not a readable CloudEvent."""
    h = headers_dict(headers)
    missing = [n for n in ("ce_id", "ce_type", "ce_source") if not h.get(n)]
    if missing or h.get("ce_specversion") != SPEC_VERSION:
        raise MalformedMessage(f"not a CloudEvent 1.0 record (missing {missing or 'specversion'})")
    try:
        data = json.loads(value or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedMessage("body must be a JSON object")
    try:
        time = (
            dt.datetime.fromisoformat(h["ce_time"]) if h.get("ce_time") else dt.datetime.now(dt.UTC)
        )
    except ValueError as exc:
        raise MalformedMessage(f"bad ce_time: {exc}") from exc
    return Envelope(
        id=h["ce_id"],
        type=h["ce_type"],
        source=h["ce_source"],
        data=data,
        subject=h.get("ce_subject"),
        time=time,
        key=key.decode("utf-8", "replace") if key else None,
        extensions={k: v for k, v in h.items() if k not in _CE_HEADERS},
        topic=topic,
        partition=partition,
        offset=offset,
    )
