"""AsyncAPI 3.0 document: the topics as channels, each service's sends and receives as operations, the payloads as schemas.

Rendered from the event catalogue (``events``): a channel per topic (its ``.dlq`` twin included),
a ``send`` operation per service and topic it publishes to, a ``receive`` operation per consumer
group and topic, and a message per event type, command and reply whose headers are the CloudEvents
envelope of ``chassis.messaging.envelope`` (Kafka binary mode) and whose payload is the JSON
Schema of the code that defines it. Keys keep the order they are built in; nothing depends on
time or the environment, so the output is byte-for-byte stable.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import yaml

from chassis.messaging.envelope import Envelope, to_kafka
from chassis.settings import BaseServiceSettings
from tools.inventory.apps import SERVICES
from tools.inventory.events import Catalogue, Message

ROOT = Path(__file__).resolve().parents[2]
VERSION = "3.0.0"
#: What each envelope header means (CloudEvents 1.0 Kafka binding; W3C Trace Context). A header
#: ``to_kafka`` writes that is missing here stops the generator, so none goes undocumented.
HEADER_MEANINGS = {
    "ce_specversion": "CloudEvents spec version, always 1.0",
    "ce_id": "event id: the outbox row's id; consumers deduplicate on it (inbox)",
    "ce_source": "the producing service (member, board, qna, saga)",
    "ce_type": "the message type: an event, command or SagaReply",
    "ce_time": "when the outbox row was written (ISO 8601)",
    "ce_subject": "the aggregate or saga the message is about (the record key)",
    "content-type": "the body's media type, application/json",
    "traceparent": "W3C trace context: the trace continues from the request that caused it",
    "tracestate": "W3C trace state, when the trace carries one",
}
_TRACE_EXTENSIONS = {"traceparent": "00-0-0-01", "tracestate": "x=y"}


def envelope_headers() -> dict[str, Any]:
    """The JSON Schema of the Kafka headers ``to_kafka`` writes: always present are those of an
    envelope without subject and trace context."""

    def names(envelope: Envelope) -> list[str]:
        return [name for name, _ in to_kafka(envelope)[2]]

    time = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    bare = names(Envelope("-", "-", "-", {}, time=time))
    full = names(Envelope("-", "-", "-", {}, "subject", time, "key", dict(_TRACE_EXTENSIONS)))
    unknown = sorted(set(full) - set(HEADER_MEANINGS))
    if unknown:
        raise ValueError(f"envelope headers without a meaning in HEADER_MEANINGS: {unknown}")
    return {
        "type": "object",
        "description": "CloudEvents 1.0 in Kafka binary content mode (chassis.messaging.envelope)",
        "required": bare,
        "properties": {
            name: {"type": "string", "description": HEADER_MEANINGS[name]} for name in full
        },
    }


def _channel_id(topic: str) -> str:
    return topic


def _message(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": message.type,
        "title": message.type,
    }
    if message.summary:
        body["summary"] = message.summary
    description = f"Defined by `{message.source}`."
    if message.notes:
        description += " " + "; ".join(message.notes).capitalize() + "."
    body["description"] = description
    body["contentType"] = "application/json"
    body["headers"] = {"$ref": "#/components/schemas/CloudEventHeaders"}
    body["payload"] = message.payload
    return body


def document(catalogue: Catalogue) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document as plain data, keys in the order they should be written."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bootstrap = BaseServiceSettings.model_fields["KAFKA_BOOTSTRAP_SERVERS"].default
    channels: dict[str, Any] = {}
    for topic in catalogue.topics:
        on = catalogue.on(topic.name)
        description = f"{topic.kind.capitalize()}."
        if topic.dead_letters_of:
            description = (
                f"Dead letters of `{topic.dead_letters_of}`: its messages, copied with `dlq_*` "
                "headers (error, attempts, original topic, partition, offset, consumer group); "
                "`chassis dlq list|replay` reads them."
            )
        if topic.config:
            settings = ", ".join(f"{k}={v}" for k, v in topic.config.items())
            description += f" Kept forever ({settings}): the read models are rebuilt from it."
        channels[_channel_id(topic.name)] = {
            "address": topic.name,
            "description": description,
            "messages": {m.key: {"$ref": f"#/components/messages/{m.key}"} for m in on},
        }
    operations: dict[str, Any] = {}
    for service in SERVICES:
        for topic in catalogue.topics:
            if service not in catalogue.senders(topic.name):
                continue
            channel = _channel_id(topic.name)
            operations[f"{service}.send.{topic.name}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{service} publishes to {topic.name}"
                + (" (dead-lettering)" if topic.dead_letters_of else " through its outbox"),
                "messages": [
                    {"$ref": f"#/channels/{channel}/messages/{m.key}"}
                    for m in catalogue.on(topic.name)
                    if topic.dead_letters_of or service in m.senders
                ],
            }
    for consumer in catalogue.consumers:
        for name in consumer.topics:
            channel = _channel_id(name)
            operations[f"{consumer.group}.receive.{name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{consumer.service} worker, consumer group {consumer.group}",
                "description": f"Handled by `{consumer.handler_name}` (inbox: once per event id).",
                "bindings": {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [consumer.group]},
                        "bindingVersion": "0.5.0",
                    }
                },
                "messages": [
                    {"$ref": f"#/channels/{channel}/messages/{m.key}"} for m in catalogue.on(name)
                ],
            }
    return {
        "asyncapi": VERSION,
        "info": {
            "title": f"{project['name']} events",
            "version": project["version"],
            "description": "Every Kafka topic of the system, who sends and who receives on it, "
            "and every message's payload. Generated by `python -m tools.inventory` from the "
            "code; do not edit.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": bootstrap,
                "protocol": "kafka",
                "description": "the local broker (KAFKA_BOOTSTRAP_SERVERS default)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {"CloudEventHeaders": envelope_headers(), **catalogue.schemas},
            "messages": {m.key: _message(m) for m in catalogue.messages},
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style, no aliases: the same data always gives the same text."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(catalogue: Catalogue) -> str:
    """``docs/learn/inventory/asyncapi.yaml``."""
    text = yaml.dump(
        document(catalogue),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    header = "# Generated by `python -m tools.inventory` (make inventory). Do not edit.\n"
    return header + text
