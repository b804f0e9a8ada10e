"""Living documentation, checked: the committed inventories and AsyncAPI document are what the code gives, and say what the code does.

The drift tests regenerate docs/learn/inventory in memory (``tools.inventory``) and compare; the
AsyncAPI document is validated against the AsyncAPI Initiative's JSON Schema of 3.0.0 (vendored
under ``asyncapi-specs/``); the payload schemas are checked against what the real publishing
code puts on the wire, and the saga's payload builders against the participants' models.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import datetime as dt
import json
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
import yaml
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no stubs in the lock
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tools.inventory import __main__ as cli
from tools.inventory import events
from tools.inventory.events import Catalogue, Message

ROOT = Path(__file__).resolve().parents[3]
SPEC_SCHEMA = Path(__file__).parent / "asyncapi-specs" / "3.0.0-without-id.json"
COMMITTED = ROOT / cli.OUTPUT


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return cli.generate()


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return events.catalogue()


# --- drift --------------------------------------------------------------------------------------


def test_the_committed_inventory_is_what_the_code_gives(generated: dict[str, str]) -> None:
    diff = cli.drift(generated, COMMITTED)
    assert not diff, f"docs/learn/inventory is stale; run `make inventory`:\n{diff}"


def test_the_output_is_the_same_on_every_run(generated: dict[str, str]) -> None:
    assert cli.generate() == generated


def test_check_exits_1_with_a_diff_when_a_file_is_stale(
    generated: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, content in generated.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    assert cli.main(["--check", "--dir", str(tmp_path)]) == 0

    api = tmp_path / "api.md"
    api.write_text(api.read_text(encoding="utf-8").replace("| Sign Up |", "| Join |"))
    capsys.readouterr()
    assert cli.main(["--check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "-| POST | `/api/members` | Join |" in out
    assert "+| POST | `/api/members` | Sign Up |" in out


def test_an_event_type_added_to_the_code_makes_the_committed_document_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new domain event published on board.events, with no regeneration: the check fails."""
    import board.domain.events as board_events

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class PostPinned(board_events.PostEvent):
        pinned_by: uuid.UUID

    PostPinned.__module__ = board_events.__name__
    monkeypatch.setattr(board_events, "PostPinned", PostPinned, raising=False)

    diff = cli.drift(cli.generate(), COMMITTED)
    assert "+    board.events.PostPinned:" in diff  # the AsyncAPI message
    assert "+#### PostPinned" in diff  # the event inventory
    assert "pinned_by" in diff


# --- the AsyncAPI document ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi(generated: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(generated["asyncapi.yaml"])
    return document


def test_the_asyncapi_document_is_valid_asyncapi_3(asyncapi: dict[str, Any]) -> None:
    validator = Draft7Validator(json.loads(SPEC_SCHEMA.read_text(encoding="utf-8")))
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(asyncapi)
    ]
    assert not errors, "\n".join(errors)
    assert asyncapi["asyncapi"] == "3.0.0"


def test_the_validator_refuses_a_broken_document(asyncapi: dict[str, Any]) -> None:
    """The schema is not a pass-everything: a misspelt action is refused."""
    validator = Draft7Validator(json.loads(SPEC_SCHEMA.read_text(encoding="utf-8")))
    broken = json.loads(json.dumps(asyncapi))
    operation = next(iter(broken["operations"].values()))
    operation["action"] = "publish"  # AsyncAPI 2's word; 3.0 says send / receive
    assert not validator.is_valid(broken)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_in_the_asyncapi_document_resolves(asyncapi: dict[str, Any]) -> None:
    """The JSON Schema of AsyncAPI does not follow ``$ref``s: a dangling one passes it."""
    refs = sorted(set(_refs(asyncapi)))
    assert refs
    dangling = []
    for ref in refs:
        try:
            _pointer(asyncapi, ref)
        except (KeyError, TypeError):
            dangling.append(ref)
    assert not dangling


def test_an_operation_names_only_messages_of_its_channel(asyncapi: dict[str, Any]) -> None:
    for name, operation in asyncapi["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name


def test_every_schema_is_a_valid_draft_7_schema(asyncapi: dict[str, Any]) -> None:
    for schema in asyncapi["components"]["schemas"].values():
        Draft7Validator.check_schema(schema)
    for message in asyncapi["components"]["messages"].values():
        Draft7Validator.check_schema(message["payload"])


def test_every_topic_is_a_channel_and_every_consumer_a_receive_operation(
    asyncapi: dict[str, Any], catalogue: Catalogue
) -> None:
    assert [c["address"] for c in asyncapi["channels"].values()] == [
        t.name for t in events.topics()
    ]
    receives = {
        (op["bindings"]["kafka"]["groupId"]["enum"][0], op["channel"]["$ref"].split("/")[-1])
        for op in asyncapi["operations"].values()
        if op["action"] == "receive"
    }
    assert receives == {(c.group, t) for c in catalogue.consumers for t in c.topics}


# --- the payload schemas say what the code sends -------------------------------------------------


def _validator(message: Message, catalogue: Catalogue) -> Draft7Validator:
    """A validator of ``message``'s payload that resolves ``#/components/schemas/...``."""
    root = {"components": {"schemas": catalogue.schemas}}
    registry: Registry[Any] = Registry().with_resource(
        "urn:components", Resource.from_contents(root, default_specification=DRAFT7)
    )
    schema = json.loads(
        json.dumps(message.payload).replace('"#/components/', '"urn:components#/components/')
    )
    return Draft7Validator(schema, registry=registry)


def _sample(kind: Any) -> Any:
    """A value of a domain event field's type."""
    if get_origin(kind) in (Union, types.UnionType):
        return _sample(next(a for a in get_args(kind) if a is not type(None)))
    samples: dict[Any, Callable[[], Any]] = {
        uuid.UUID: uuid.uuid4,
        int: lambda: 7,
        str: lambda: "text",
        dt.datetime: lambda: dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    }
    return samples[kind]()


def _instances(service: str) -> list[Any]:
    """One instance of every event type of ``service``'s ``domain/events.py``."""
    import importlib

    module = importlib.import_module(f"{service}.domain.events")
    found = []
    for cls in events.event_classes(module):
        hints = get_type_hints(cls)
        values = {f.name: _sample(hints[f.name]) for f in dataclasses.fields(cls) if f.init}
        found.append(cls(**values))
    return found


class _Outbox:
    """Stands in for a unit of work: records what the publishing code stages in the outbox."""

    def __init__(self) -> None:
        self.staged: list[tuple[str, str, dict[str, Any]]] = []
        self.questions = self  # qna's unit of work saves the aggregate first

    async def publish(self, topic: str, event_type: str, key: str, data: Any, **_: Any) -> None:
        self.staged.append((topic, event_type, dict(data)))

    async def save(self, _: object) -> None:
        return None


def _published(service: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every event type of ``service`` run through the code that really publishes it."""
    outbox = _Outbox()
    instances = _instances(service)
    if service == "member":
        from member.service_layer.handlers import publish_events

        asyncio.run(publish_events(outbox, instances))  # type: ignore[arg-type]
    elif service == "board":
        from board.service_layer.handlers import publish_post

        post = types.SimpleNamespace(events=list(instances))
        asyncio.run(publish_post(outbox, post, dt.datetime.now(dt.UTC)))  # type: ignore[arg-type]
    else:
        from qna.service_layer.unit_of_work import QnaUnitOfWork

        question = types.SimpleNamespace(pull_events=lambda: list(instances))
        asyncio.run(QnaUnitOfWork.save(outbox, question))  # type: ignore[arg-type]
    assert len(outbox.staged) == len(instances)
    return outbox.staged


@pytest.mark.parametrize("service", sorted(events.PUBLISHED_EXTRAS))
def test_every_published_event_body_is_what_its_schema_says(
    service: str, catalogue: Catalogue
) -> None:
    """The topic, the type and the exact set of body fields, as the publishing code stages
    them, against the catalogue: a field the publisher adds (``PUBLISHED_EXTRAS``) or drops
    fails here."""
    by_key = {m.key: m for m in catalogue.messages}
    for topic, event_type, body in _published(service):
        message = by_key.get(f"{topic}.{event_type}")
        assert message is not None, f"{service} publishes {event_type} on {topic}"
        errors = [e.message for e in _validator(message, catalogue).iter_errors(body)]
        assert not errors, f"{event_type}: {errors}"
        assert set(body) == set(message.payload["properties"]), event_type


def test_a_saga_payload_builder_writes_what_the_participant_model_reads(
    catalogue: Catalogue,
) -> None:
    """Producer and consumer of each command agree: every key the saga's builder writes is a
    field of the participant's model, and every required field is written."""
    found = events.participants(catalogue.consumers)
    checked = 0
    for sent in events.sent_commands():
        handler = found[sent.participant].handlers.get(sent.command)
        assert handler is not None, f"{sent.participant} has no handler for {sent.command}"
        model = events.payload_model(handler, sent.command)
        if model is None:
            continue  # parsed by hand: the inventory says so
        fields = model.model_fields
        required = {name for name, field in fields.items() if field.is_required()}
        assert set(sent.payload_keys) <= set(fields), sent
        assert required <= set(sent.payload_keys), sent
        checked += 1
    assert checked >= 7  # board's two and qna's five commands have models


# --- nothing publishes past the inventory ---------------------------------------------------------

#: Every place that stages a message in an outbox, and where the inventory reads what it sends.
KNOWN_PUBLISHERS = {
    ("services/member/src/member/service_layer/handlers.py", "publish_events"),  # events
    ("services/board/src/board/service_layer/handlers.py", "publish_post"),  # events
    ("services/qna/src/qna/service_layer/unit_of_work.py", "save"),  # events
    ("saga/src/saga/engine.py", "_publish"),  # commands of the saga definitions
    ("libs/chassis/src/chassis/saga.py", "_send_reply"),  # replies
}


def _publish_calls(path: Path) -> Iterator[str]:
    """The names of the functions in ``path`` that call ``<something>.publish(...)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "publish"
            ):
                yield function.name
                break


def test_every_outbox_publisher_is_one_the_inventory_reads() -> None:
    """A new place that publishes would send messages the inventory does not know: teach
    ``tools/inventory/events.py`` about it, then add it here."""
    sources = [
        *ROOT.glob("services/*/src/**/*.py"),
        *ROOT.glob("saga/src/**/*.py"),
        *ROOT.glob("libs/chassis/src/**/*.py"),
        *ROOT.glob("gateway/src/**/*.py"),
        *ROOT.glob("web/src/**/*.py"),
    ]
    found = {
        (str(path.relative_to(ROOT)), name) for path in sources for name in _publish_calls(path)
    }
    assert found == KNOWN_PUBLISHERS
