"""Event catalogue: every topic, every message type on it, who sends it, who receives it, and its payload schema.

Read from the code, never listed by hand:

- the topics are the chassis's (``chassis.messaging.topics``: what ``chassis topics create``
  makes), each with its ``.dlq`` twin;
- an integration event type is a concrete dataclass of a service's ``domain/events.py``, sent on
  the topic its service layer publishes to; its payload schema is the dataclass's JSON Schema
  (``event_data`` serialises every field), plus what the publisher adds to every body
  (``PUBLISHED_EXTRAS``, checked against the real publishing code by the tests);
- a saga command is a forward or compensating command of a saga definition
  (``saga.definitions``), or one a participant handles though no saga sends it any more. The
  body is a ``chassis.saga.SagaCommand``; its ``payload`` schema is the participant's own
  payload model, found by running the participant's parse step on an empty payload (the
  ``ValidationError`` names the model). Every participant reads its payload with
  ``chassis.saga.command_payload``: a handler without a model stops the generator;
- a saga reply is a ``chassis.saga.SagaReply`` on ``saga.replies``, sent by every participant;
- the consumers are the consumer loops each worker's composition root registers (``apps``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from chassis.messaging.topics import (
    ALL_TOPICS,
    COMMAND_TOPICS,
    EVENT_TOPICS,
    REPLY_TOPIC,
    dlq,
    topic_config,
    with_dlqs,
)
from chassis.saga import REPLY_EVENT_TYPE, SagaCommand, SagaParticipant, SagaReply, command_topic
from tools.inventory.apps import SERVICES, Consumer, consumers

#: Where ``$ref`` points in the generated schemas: the AsyncAPI document's component schemas.
REF_TEMPLATE = "#/components/schemas/{model}"

#: What each service's publisher adds to every event body besides the dataclass's fields
#: (board: ``service_layer/handlers.py`` ``publish_post``; qna: ``unit_of_work.py``
#: ``event_payload``). tests/unit/inventory checks it against those functions.
PUBLISHED_EXTRAS: dict[str, dict[str, type]] = {
    "member": {},
    "board": {"occurred_at": dt.datetime},
    "qna": {"occurred_at": dt.datetime},
}

#: The topic each service's service layer publishes its domain events to (the constant it uses).
_EVENT_TOPIC_CONSTANTS = {
    "member": ("member.service_layer.handlers", "EVENTS_TOPIC"),
    "board": ("board.service_layer.handlers", "BOARD_EVENTS"),
    "qna": ("qna.service_layer.unit_of_work", "QNA_EVENTS"),
}


@dataclass(frozen=True)
class Message:
    """One message type on one topic.

    ``key`` is unique in the catalogue (``<topic>.<type>``); ``type`` is the CloudEvents
    ``ce_type``; ``payload`` is a JSON Schema whose ``$ref``s point at ``schemas``."""

    key: str
    topic: str
    type: str
    kind: str  # "event", "command" or "reply"
    summary: str
    senders: tuple[str, ...]
    payload: dict[str, Any]
    source: str  # the dotted name of the code that defines the payload
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Topic:
    """One topic of ``chassis topics create``."""

    name: str
    kind: str
    config: dict[str, str]
    dead_letters_of: str | None = None


@dataclass
class Catalogue:
    """Everything ``events.md`` and ``asyncapi.yaml`` are rendered from."""

    topics: list[Topic]
    messages: list[Message]
    consumers: list[Consumer]
    #: Component schemas shared by the payloads (``SagaCommand``, ``Outcome``, payload models).
    schemas: dict[str, Any] = field(default_factory=dict)

    def on(self, topic: str) -> list[Message]:
        """The messages sent on ``topic`` (a ``.dlq`` holds those of its topic)."""
        base = topic.removesuffix(".dlq")
        return [m for m in self.messages if m.topic == base]

    def senders(self, topic: str) -> list[str]:
        """The services that send on ``topic``: a ``.dlq`` is written by the consumers of its
        topic (``chassis.messaging.consumer``) and, for a command topic, by the orchestrator
        (a command it gives up on goes there, ``saga.orchestrator.OutgoingCommand``)."""
        if topic.endswith(".dlq"):
            base = topic.removesuffix(".dlq")
            found = {c.service for c in self.consumers if base in c.topics}
            if base in COMMAND_TOPICS and _orchestrator_dead_letters(base):
                found.add("saga")
            return sorted(found)
        return sorted({s for m in self.on(topic) for s in m.senders})

    def receivers(self, topic: str) -> list[Consumer]:
        return [c for c in self.consumers if topic in c.topics]


def _orchestrator_dead_letters(topic: str) -> bool:
    """True when the orchestrator writes a command it gives up on to ``topic``'s ``.dlq``."""
    from saga.orchestrator import OutgoingCommand

    participant = topic.split(".")[1]
    command = SagaCommand(saga_id="-", saga_type="-", step="-", command="-")
    return OutgoingCommand(participant, command, dead_letter_reason="-").topic == dlq(topic)


def topics() -> list[Topic]:
    """Every topic ``chassis topics create`` makes, in its order."""
    kinds = {
        **dict.fromkeys(EVENT_TOPICS, "integration events"),
        **dict.fromkeys(COMMAND_TOPICS, "saga commands"),
        REPLY_TOPIC: "saga replies",
    }
    found = []
    for name in with_dlqs(list(ALL_TOPICS)):
        base = name.removesuffix(".dlq")
        if name == base:
            found.append(Topic(name, kinds[name], topic_config(name)))
        else:
            found.append(Topic(name, "dead letters", topic_config(name), dead_letters_of=base))
    return found


# --- JSON Schema ------------------------------------------------------------------------------


def _lift(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Move ``$defs`` into the shared component schemas (their refs already point there)."""
    for name, definition in schema.pop("$defs", {}).items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two schemas are named {name}; rename one")
    return schema


def _doc(cls: type) -> str:
    """The class's own docstring, first paragraph; "" for none (a dataclass without one gets
    its signature as ``__doc__``, which is no description)."""
    doc = cls.__dict__.get("__doc__") or ""
    if not doc or doc.startswith(f"{cls.__name__}("):
        return ""
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")


def dataclass_schema(
    cls: type, extras: Mapping[str, type], schemas: dict[str, Any]
) -> dict[str, Any]:
    """The JSON Schema of the JSON body ``event_data`` makes of a ``cls`` instance, with
    ``extras`` added: every field is always present, so every property is required."""
    schema = _lift(
        TypeAdapter(cls).json_schema(mode="serialization", ref_template=REF_TEMPLATE), schemas
    )
    properties: dict[str, Any] = dict(schema.get("properties", {}))
    for name, kind in extras.items():
        properties[name] = TypeAdapter(kind).json_schema(mode="serialization")
    schema["properties"] = properties
    schema["required"] = list(properties)
    schema.pop("description", None)
    description = _doc(cls)
    if description:
        schema["description"] = description
    return schema


def model_schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON Schema (validation mode: what the receiver accepts) as a component."""
    schema = _lift(model.model_json_schema(ref_template=REF_TEMPLATE), schemas)
    if schemas.setdefault(model.__name__, schema) != schema:
        raise ValueError(f"two payload models are named {model.__name__}; rename one")
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


# --- integration events -----------------------------------------------------------------------


def event_classes(module: ModuleType) -> list[type]:
    """The concrete event types of a ``domain/events.py``: its dataclasses no other one there
    extends (the bases only share fields), in the order the module defines them (a module's
    namespace keeps that order)."""
    defined = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == module.__name__
    ]
    bases = {base for cls in defined for base in cls.__mro__[1:]}
    return [cls for cls in defined if cls not in bases]


def event_topic(service: str) -> str:
    """The topic ``service``'s service layer publishes its domain events to."""
    module, name = _EVENT_TOPIC_CONSTANTS[service]
    topic = getattr(importlib.import_module(module), name)
    assert isinstance(topic, str)
    return topic


def integration_events(schemas: dict[str, Any]) -> Iterator[Message]:
    for service, extras in PUBLISHED_EXTRAS.items():
        module = importlib.import_module(f"{service}.domain.events")
        topic = event_topic(service)
        for cls in event_classes(module):
            yield Message(
                key=f"{topic}.{cls.__name__}",
                topic=topic,
                type=cls.__name__,
                kind="event",
                summary=_doc(cls),
                senders=(service,),
                payload=dataclass_schema(cls, extras, schemas),
                source=f"{cls.__module__}.{cls.__qualname__}",
            )


# --- saga commands and replies ----------------------------------------------------------------


@dataclass(frozen=True)
class SentCommand:
    """A command some saga definition sends: which saga, which step, forward or compensation."""

    saga: str
    step: str
    kind: str  # the step's kind, or "compensation"
    participant: str
    command: str
    payload_keys: tuple[str, ...]


class _KeyRecorder(Mapping[str, Any]):
    """Saga data that answers every key with its own name, so a payload builder shows which
    keys it writes without running a saga."""

    def __getitem__(self, key: str) -> Any:
        return key

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def sent_commands() -> list[SentCommand]:
    """Every command of every saga definition, in step order (forward, then its compensation)."""
    from saga.definitions import DEFINITIONS

    found = []
    for name in sorted(DEFINITIONS):
        for step in DEFINITIONS[name].steps:
            invocations = [(str(step.kind), step.action)]
            if step.compensation is not None:
                invocations.append(("compensation", step.compensation))
            for kind, invocation in invocations:
                keys = tuple(invocation.payload(_KeyRecorder()))
                found.append(
                    SentCommand(
                        name, step.name, kind, invocation.participant, invocation.command, keys
                    )
                )
    return found


def participants(found: list[Consumer]) -> dict[str, SagaParticipant[Any]]:
    """The saga participant behind each ``saga.<service>.commands`` consumer, by service."""
    found_participants = {}
    for consumer in found:
        owner = getattr(consumer.handler, "__self__", None)
        if isinstance(owner, SagaParticipant):
            found_participants[consumer.service] = owner
    return found_participants


def payload_model(handler: Callable[..., Any], command: str) -> type[BaseModel] | None:
    """The pydantic model ``handler`` validates a command's payload with, or None.

    The handler's parse step runs on an empty payload, before it touches its unit of work; a
    ``ValidationError`` raised there (it is the cause of the ``CommandRejected``) names the model,
    which is looked up in the handler's module."""
    probe = SagaCommand(saga_id="-", saga_type="-", step="-", command=command)
    try:
        asyncio.run(handler(None, probe))
    except Exception as exc:  # the refusal of an empty payload; its cause says by what
        error: BaseException | None = exc
        while error is not None and not isinstance(error, ValidationError):
            error = error.__cause__
        if error is None:
            return None
        model = getattr(handler, "__globals__", {}).get(error.title)
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model
    return None


def saga_messages(found: list[Consumer], schemas: dict[str, Any]) -> Iterator[Message]:
    command_ref = model_schema(SagaCommand, schemas)
    sent = sent_commands()
    by_participant = participants(found)
    for service in sorted(by_participant, key=SERVICES.index):
        participant = by_participant[service]
        topic = command_topic(service)
        names = list(dict.fromkeys([s.command for s in sent if s.participant == service]))
        names += sorted(set(participant.handlers) - set(names))
        for name in names:
            uses = [s for s in sent if s.participant == service and s.command == name]
            handler = participant.handlers.get(name)
            model = payload_model(handler, name) if handler is not None else None
            notes = []
            if model is not None:
                payload = model_schema(model, schemas)
                source = f"{model.__module__}.{model.__qualname__}"
            elif handler is not None:
                # One shape: every participant reads its payload with chassis.saga.command_payload.
                raise SystemExit(
                    f"{handler.__module__}: {name} is read without a payload model "
                    "(use chassis.saga.command_payload)"
                )
            else:
                payload = {"type": "object"}
                source = "no handler"
            if handler is None:
                notes.append(f"{service} has no handler: it answers FAILURE")
            if not uses:
                notes.append("no saga sends it (a participant keeps the handler for old messages)")
            summary = "; ".join(f"{s.saga} / {s.step} ({s.kind})" for s in uses)
            yield Message(
                key=f"{topic}.{name}",
                topic=topic,
                type=name,
                kind="command",
                summary=summary,
                senders=("saga",) if uses else (),
                payload={
                    "allOf": [
                        command_ref,
                        {"properties": {"command": {"const": name}, "payload": payload}},
                    ]
                },
                source=source,
                notes=tuple(notes),
            )
    yield Message(
        key=f"{REPLY_TOPIC}.{REPLY_EVENT_TYPE}",
        topic=REPLY_TOPIC,
        type=REPLY_EVENT_TYPE,
        kind="reply",
        summary="a participant's answer to one command attempt; `result` is the step's own "
        "dict (not modelled), merged into the saga's data",
        senders=tuple(sorted(by_participant, key=SERVICES.index)),
        payload=model_schema(SagaReply, schemas),
        source=f"{SagaReply.__module__}.{SagaReply.__qualname__}",
    )


def catalogue() -> Catalogue:
    """Build the whole catalogue from the code (a few seconds: it builds four workers)."""
    found = [c for service in SERVICES for c in consumers(service)]
    schemas: dict[str, Any] = {}
    messages = [*integration_events(schemas), *saga_messages(found, schemas)]
    return Catalogue(topics(), messages, found, dict(sorted(schemas.items())))
