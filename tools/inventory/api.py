"""API inventory: every route of every service and of the gateway, from their OpenAPI documents and the route table.

Each app is built in-process (``apps``) and asked for ``app.openapi()``, the document its
``/openapi.json`` serves. A row per operation: method, path, summary, who may call it, the
success status and the problem statuses the document declares, and whether the gateway's route
table (``gateway.routes.ROUTES``) exposes it. Routes an app serves but leaves out of its document
(``/internal/**``, health, metrics, the documentation pages) are listed after it, as internal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from chassis.auth import admin_principal
from chassis.openapi import METHODS
from gateway.docs import EDGE_STATUSES, routed_operations
from gateway.routes import ROUTES, Access
from tools.inventory.apps import SERVICES, api_app, gateway_app

GATEWAY = "gateway"


@dataclass(frozen=True)
class Operation:
    """One operation of an OpenAPI document."""

    method: str
    path: str
    summary: str
    auth: str  # "none", "bearer" or "admin"
    success: str
    problems: tuple[str, ...]
    exposed: Access | None  # the gateway's access rule, or None when it does not route it


@dataclass(frozen=True)
class Hidden:
    """A route an app serves but its OpenAPI document leaves out."""

    methods: tuple[str, ...]
    path: str
    name: str


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    description: str
    operations: list[Operation]
    hidden: list[Hidden]


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    yield dependant.call
    for dependency in dependant.dependencies:
        yield from _calls(dependency)


def _admin_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of the routes that depend on ``chassis.auth.admin_principal`` (403 for a
    caller without the admin role): the OpenAPI security requirement says only "bearer"."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if route.path_format is None or dependant is None:
            continue
        if admin_principal in set(_calls(dependant)):
            found |= {(m.lower(), route.path_format) for m in route.methods or ()}
    return found


def _hidden_routes(app: FastAPI) -> list[Hidden]:
    hidden = []
    for route in iter_route_contexts(app.routes):
        if getattr(route, "include_in_schema", True) or route.path_format is None:
            continue
        methods = tuple(sorted((route.methods or set()) - {"HEAD"}))
        hidden.append(Hidden(methods, route.path_format, route.name or ""))
    return sorted(hidden, key=lambda h: (h.path, h.methods))


def _shape(path: str) -> tuple[str, ...]:
    """Path segments with parameter names blanked (the table says ``{qid}``, qna ``{question_id}``)."""
    return tuple("{}" if s.startswith("{") else s for s in path.split("/"))


def operations(app: FastAPI, routed: dict[tuple[str, str], Access]) -> list[Operation]:
    """The operations of ``app``'s OpenAPI document in its order; ``routed`` maps (method, path
    shape) to the gateway's access rule (``gateway.docs.routed_operations``)."""
    document = app.openapi()
    admin = _admin_routes(app)
    exposed = {(m, _shape(p)): access for (m, p), access in routed.items()}
    found = []
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            codes = sorted(operation.get("responses", {}))
            if (method, path) in admin:
                auth = "admin"
            elif operation.get("security"):
                auth = "bearer"
            else:
                auth = "none"
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=operation.get("summary", ""),
                    auth=auth,
                    success=next((c for c in codes if c.startswith("2")), "-"),
                    problems=tuple(c for c in codes if c[:1] in "45"),
                    exposed=exposed.get((method, _shape(path))),
                )
            )
    return found


def _service(name: str, app: FastAPI, routed: dict[tuple[str, str], Access]) -> Service:
    info = app.openapi()["info"]
    return Service(
        name,
        info.get("title", name),
        info.get("description", ""),
        operations(app, routed),
        _hidden_routes(app),
    )


def services() -> list[Service]:
    """The gateway's own API first, then each service's, in ``SERVICES`` order."""
    # the gateway serves its own operations itself: none of them goes through the route table
    found = [_service(GATEWAY, gateway_app(), {})]
    found += [_service(s, api_app(s), routed_operations(s)) for s in SERVICES]
    return found


def unmatched_routes(found: list[Service]) -> list[str]:
    """Route-table entries no service document has (each should be none: a route to nowhere)."""
    documented = {(s.name, o.method, _shape(o.path)) for s in found for o in s.operations}
    return [
        r.name
        for r in ROUTES
        if (r.upstream, r.method, _shape(r.path)) not in documented and r.upstream in SERVICES
    ]


# --- markdown ---------------------------------------------------------------------------------

_ACCESS = {Access.PUBLIC: "public", Access.TOKEN: "token", Access.ANONYMOUS: "anonymous"}


def render(found: list[Service]) -> str:
    """``docs/learn/inventory/api.md``."""
    lines = [
        "# API inventory",
        "",
        "<!-- Generated by `python -m tools.inventory` (make inventory) from the OpenAPI "
        "documents. Do not edit: a test fails when this file and the code disagree. -->",
        "",
        "Every operation of every OpenAPI document, as each app builds it (`/openapi.json` of "
        "the service; the gateway's `/docs` shows the same documents trimmed to what it routes).",
        "",
        "- **Auth**: `none` (no security requirement), `bearer` (an access token: 401 without a "
        "valid one), `admin` (a bearer token of an admin: 403 otherwise, from the route's "
        "`admin_principal` dependency).",
        "- **Success** and **Problems**: the status codes the document declares; every problem "
        "is `application/problem+json` (RFC 9457).",
        "- **Gateway**: `public` or `token` when the gateway's route table exposes the operation "
        "(with that access rule at the edge), `internal` when it does not. Through the "
        "gateway an operation may also answer "
        + ", ".join(str(s) for s in EDGE_STATUSES)
        + " (the edge's own limits, rate limit and upstream failures), and 401 where the edge "
        "wants a token.",
        "",
    ]
    for service in found:
        lines += [f"## {service.name}", ""]
        if service.description:
            lines += [service.description, ""]
        lines += [
            "| Method | Path | Summary | Auth | Success | Problems | Gateway |",
            "|---|---|---|---|---|---|---|",
        ]
        for op in service.operations:
            gateway = "internal" if op.exposed is None else _ACCESS[op.exposed]
            if service.name == GATEWAY:
                gateway = "own"
            lines.append(
                f"| {op.method} | `{op.path}` | {op.summary} | {op.auth} | {op.success} | "
                f"{', '.join(op.problems) or '-'} | {gateway} |"
            )
        lines.append("")
        if service.hidden:
            lines += [
                "Served but left out of the document (never routed by the gateway, except the "
                "gateway's own pages):",
                "",
            ]
            lines += [f"- {', '.join(h.methods)} `{h.path}` ({h.name})" for h in service.hidden]
            lines.append("")
    unmatched = unmatched_routes(found)
    lines += ["## Route table entries without a documented operation", ""]
    lines += [f"- `{name}`" for name in unmatched] if unmatched else ["None."]
    lines.append("")
    return "\n".join(lines)
