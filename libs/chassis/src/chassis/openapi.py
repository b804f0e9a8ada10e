"""API description: every problem a route can answer is in its OpenAPI document, as ``application/problem+json``.

``create_app`` installs ``document_problems`` on every app, so each operation lists, with the one
``Problem`` schema (RFC 9457: ``type``, ``title``, ``status``, ``detail``, ``instance``,
``errors``), the statuses the chassis and the rules of docs/CONVENTIONS.md make it answer:

===========================  ====================================================================
status                       operations
===========================  ====================================================================
422                          every one: the input guard reads the path, query and headers of all
400, 413                     those with a request body (unparseable; over the guard's bound)
401, 403                     those with a bearer token (``security``): no valid token; not allowed
404                          those with a path parameter or a principal (an id or "me" not found)
409                          POST, PUT, PATCH and DELETE (a duplicate, a state that forbids it)
===========================  ====================================================================

Anything else a route can answer (429 of a throttle, 503 of a synchronous call to another
service) it declares with ``responses=problems(429, 503)`` on the route or its router; this
pass gives those the problem media type and schema too. FastAPI's own 422 entry (its
``HTTPValidationError`` schema) is replaced, since the chassis answers validation errors as
problems.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from chassis.problems import PROBLEM_JSON

PROBLEM_REF = "#/components/schemas/Problem"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
WRITES = frozenset({"post", "put", "patch", "delete"})

PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details; `errors` lists what was wrong with the input.",
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "description": "a URI naming the kind of problem"},
            "title": {"type": "string", "description": "the status's reason phrase"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "the request path"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemError"}},
        },
    },
    "ProblemError": {
        "title": "ProblemError",
        "description": 'One refused input: `loc` is where (e.g. ["body", "email"], '
        '["query", "q"], ["header", "idempotency-key"], ["path"]).',
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"},
            "type": {"type": "string"},
            "ctx": {
                "type": "object",
                "description": "the numeric bounds of the refused constraint, when it has "
                'any (e.g. {"min_length": 8}): min_length, max_length, ge, gt, le, lt',
                "additionalProperties": {"type": "number"},
            },
        },
    },
}


def problem_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of a problem with ``status``."""
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router that can also answer ``statuses`` as problems."""
    return {status: problem_response(status) for status in statuses}


def default_statuses(method: str, operation: dict[str, Any]) -> set[int]:
    """The problem statuses every operation of this shape can answer (the table above)."""
    statuses = {422}
    if "requestBody" in operation:
        statuses |= {400, 413}
    secured = bool(operation.get("security"))
    if secured:
        statuses |= {401, 403}
    has_path_parameter = any(p.get("in") == "path" for p in operation.get("parameters", ()))
    if has_path_parameter or secured:
        statuses.add(404)
    if method in WRITES:
        statuses.add(409)
    return statuses


def with_problems(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the problem schemas and every operation's problem responses (in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(PROBLEM_SCHEMAS)
    for item in document.get("paths", {}).values():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in sorted(declared | default_statuses(method, operation)):
                responses[str(status)] = problem_response(status)
    schemas.pop("HTTPValidationError", None)
    if "#/components/schemas/ValidationError" not in json.dumps(document):
        schemas.pop("ValidationError", None)
    return document


def document_problems(app: FastAPI) -> None:
    """Make ``app.openapi()`` return its document ``with_problems`` (built once, then cached)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
