"""CloudEvents envelope: binary-mode encoding round-trips, and unreadable records are recognised."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid

import pytest
from aiokafka import ConsumerRecord

from chassis.messaging.envelope import (
    Envelope,
    MalformedMessage,
    event_data,
    from_consumer_record,
    from_record,
    headers_dict,
    to_kafka,
)


def test_round_trip_keeps_every_attribute_and_extension() -> None:
    env = Envelope.new(
        "PostCreated",
        "board",
        {"post_id": "p1", "title": "안녕"},
        key="p1",
        extensions={"traceparent": "00-x"},
    )
    key, value, headers = to_kafka(env)
    h = headers_dict(headers)
    assert key == b"p1"
    assert h["ce_specversion"] == "1.0"
    assert h["ce_type"] == "PostCreated"
    assert h["content-type"] == "application/json"
    back = from_record("board.events", 0, 7, key, value, headers)
    assert (back.id, back.type, back.source, back.subject, back.data) == (
        env.id,
        env.type,
        env.source,
        "p1",
        {"post_id": "p1", "title": "안녕"},
    )
    assert back.extensions == {"traceparent": "00-x"}
    assert back.offset == 7


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (b"{}", []),
        (
            b"{}",
            [("ce_specversion", b"0.3"), ("ce_id", b"1"), ("ce_type", b"T"), ("ce_source", b"s")],
        ),
        (
            b"not json",
            [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"T"), ("ce_source", b"s")],
        ),
        (
            b"[1, 2]",
            [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"T"), ("ce_source", b"s")],
        ),
        (
            b"{}",
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_type", b"T"),
                ("ce_source", b"s"),
                ("ce_time", b"soon"),
            ],
        ),
    ],
)
def test_unreadable_records_are_malformed(value: bytes, headers: list[tuple[str, bytes]]) -> None:
    with pytest.raises(MalformedMessage):
        from_record("t", 0, 0, None, value, headers)


def test_event_topics_are_kept_forever_and_working_queues_are_not() -> None:
    from chassis.messaging.topics import topic_config

    assert topic_config("board.events")["retention.ms"] == "-1"
    assert topic_config("t123.member.events")["retention.ms"] == "-1"  # prefixed test topics too
    assert topic_config("board.events.dlq") == {}
    assert topic_config("saga.replies") == {}
    assert topic_config("saga.board.commands") == {}


def test_a_domain_event_becomes_a_json_body() -> None:
    class Role(enum.Enum):
        USER = "USER"

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Registered:
        member_id: uuid.UUID
        role: Role
        at: dt.datetime
        nickname: str | None

    member_id = uuid.uuid4()
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    data = event_data(Registered(member_id=member_id, role=Role.USER, at=at, nickname=None))

    assert data == {
        "member_id": str(member_id),
        "role": "USER",
        "at": "2026-01-02T03:04:05Z",
        "nickname": None,
    }
    assert json.loads(json.dumps(data)) == data
    with pytest.raises(TypeError, match="dataclass"):
        event_data("not an event")


def test_a_record_as_aiokafka_delivers_it_decodes_with_its_position() -> None:
    env = Envelope.new("PostDeleted", "board", {"post_id": "p9"}, key="p9")
    key, value, headers = to_kafka(env)
    record = ConsumerRecord(
        topic="board.events",
        partition=2,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=list(headers),
    )

    back = from_consumer_record(record)

    assert (back.id, back.type, back.data) == (env.id, "PostDeleted", {"post_id": "p9"})
    assert (back.topic, back.partition, back.offset) == ("board.events", 2, 41)
