"""Every input of every public API has a bound: walked from the OpenAPI documents of the apps.

A new request field, query, path or header parameter without a bound fails here, before it can
carry a number past its column or a string no store or hash should take. An integer needs a
minimum and a maximum; a string needs a ``maxLength`` unless the allow-list below says why its
shape bounds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from chassis.problems import PROBLEM_JSON

#: Settings that need no infrastructure: building an app opens no connection.
NOWHERE = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nothing"

#: String formats a parser bounds before any store sees the value.
BOUNDED_FORMATS = {
    "uuid": "parsed into a UUID (36 characters) or refused",
    "date-time": "parsed into a datetime or refused",
}
INT4_MAX = 2_147_483_647


def _member() -> FastAPI:
    from member.bootstrap import build_api
    from member.config import Settings

    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return build_api(Settings(DATABASE_URL=NOWHERE, JWT_PRIVATE_KEY=pem))


def _board() -> FastAPI:
    from board.bootstrap import build_api
    from board.config import Settings

    return build_api(Settings(DATABASE_URL=NOWHERE))


def _qna() -> FastAPI:
    from qna.bootstrap import build_api
    from qna.config import Settings

    return build_api(Settings(DATABASE_URL=NOWHERE))


def _saga() -> FastAPI:
    from saga.bootstrap import build_api
    from saga.config import Settings

    return build_api(Settings(DATABASE_URL=NOWHERE))


def _gateway() -> FastAPI:
    from gateway.bootstrap import build_api
    from gateway.config import Settings

    return build_api(Settings())


APPS: dict[str, Callable[[], FastAPI]] = {
    "member": _member,
    "board": _board,
    "qna": _qna,
    "saga": _saga,
    "gateway": _gateway,
}


@pytest.fixture(scope="module", params=sorted(APPS))
def document(request: pytest.FixtureRequest) -> dict[str, Any]:
    built: dict[str, Any] = APPS[request.param]().openapi()
    return built


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def unbounded(document: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[str]:
    """Each place under ``schema`` (at ``where``) whose value has no bound."""
    schema = _resolve(document, schema)
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, ()):
            yield from unbounded(document, branch, where)
    if "enum" in schema or "const" in schema:
        return  # one of a fixed set of values
    kind = schema.get("type")
    if kind in ("integer", "number"):
        low = "minimum" in schema or "exclusiveMinimum" in schema
        high = "maximum" in schema or "exclusiveMaximum" in schema
        if not (low and high):
            yield f"{where}: {kind} without both a minimum and a maximum"
        elif kind == "integer" and schema.get("maximum", 0) > INT4_MAX:
            yield f"{where}: integer maximum past int4 ({schema['maximum']})"
    elif kind == "string":
        if "maxLength" not in schema and schema.get("format") not in BOUNDED_FORMATS:
            yield f"{where}: string without maxLength"
    elif kind == "object":
        for name, prop in schema.get("properties", {}).items():
            yield from unbounded(document, prop, f"{where}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            yield from unbounded(document, extra, f"{where}.*")
    elif kind == "array":
        if "maxItems" not in schema:
            yield f"{where}: array without maxItems"
        yield from unbounded(document, schema.get("items", {}), f"{where}[]")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield f"{method.upper()} {path}", operation


def test_every_input_has_a_bound(document: dict[str, Any]) -> None:
    found: list[str] = []
    for name, operation in operations(document):
        for parameter in operation.get("parameters", ()):
            where = f"{name} {parameter['in']} {parameter['name']}"
            found += unbounded(document, parameter["schema"], where)
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            found += unbounded(document, content["schema"], f"{name} body ({media})")
    assert not found, "\n".join(found)


def test_every_problem_is_documented_as_problem_json(document: dict[str, Any]) -> None:
    assert "Problem" in document["components"]["schemas"]
    for name, operation in operations(document):
        responses = operation["responses"]
        assert "422" in responses, f"{name}: the input guard's 422 is not documented"
        for status, response in responses.items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM_JSON], (name, status)
        if operation.get("security"):
            assert {"401", "403"} <= set(responses), name


def test_the_walk_finds_an_unbounded_field() -> None:
    """The test above can fail: a string and an integer without bounds are reported."""
    document: dict[str, Any] = {"components": {"schemas": {}}}
    schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "count": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
            "big": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            "id": {"type": "string", "format": "uuid"},
            "mode": {"type": "string", "enum": ["a", "b"]},
        },
    }
    assert list(unbounded(document, schema, "body")) == [
        "body.text: string without maxLength",
        "body.count: integer without both a minimum and a maximum",
        f"body.big: integer maximum past int4 ({2**63 - 1})",
    ]
