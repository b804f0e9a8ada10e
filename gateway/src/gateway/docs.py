"""Aggregated API documentation: one Swagger UI at ``/docs`` listing every service's OpenAPI document.

Each document is fetched from its service through the same connection pool and breaker as any
other call, and trimmed to the operations the route table exposes, so internal endpoints
(``/internal/**``, the JWKS) never show and "Try it out" goes through the gateway. The page's
scripts and style sheet are served by the gateway itself (``chassis.swagger_ui``), never a CDN.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from chassis.openapi import PROBLEM_SCHEMAS, problem_response
from chassis.problems import NotFound, ServiceUnavailable
from chassis.swagger_ui import OFFLINE_PARAMETERS, asset_url
from gateway.proxy import Proxy, request_id_of
from gateway.routes import ROUTES, SERVICES, TOKEN, Access

GATEWAY = "gateway"
DOCUMENTS = (GATEWAY, *SERVICES)
_PARAM = re.compile(r"\{[^}/]*\}")

router = APIRouter(include_in_schema=False)


def _shape(path: str) -> str:
    """``/api/posts/{post_id}`` and ``/api/posts/{id}`` are the same endpoint."""
    return _PARAM.sub("{}", path)


#: What the edge itself can answer on any routed operation (proxy.py): the input guard (422), a
#: URI, header block or body too large (414, 431, 413), the rate limit (429), and an upstream
#: that answers nonsense, cannot be reached or has its circuit open, or times out (502-504).
EDGE_STATUSES = (413, 414, 422, 429, 431, 502, 503, 504)


def routed_operations(upstream: str) -> dict[tuple[str, str], Access]:
    """(method, path shape) of every operation the route table sends to ``upstream``, with the
    access the edge demands for it."""
    return {(r.method.lower(), _shape(r.path)): r.access for r in ROUTES if r.upstream == upstream}


def _with_edge_problems(operation: Any, access: Access) -> Any:
    """``operation`` with the problems the gateway answers itself (401 where it wants a token)."""
    if not isinstance(operation, dict):
        return operation
    responses = dict(operation.get("responses") or {})
    for status in (*EDGE_STATUSES, 401) if access is TOKEN else EDGE_STATUSES:
        responses[str(status)] = problem_response(status)
    return {**operation, "responses": responses}


def public_document(upstream: str, document: dict[str, Any]) -> dict[str, Any]:
    """Keep only the operations reachable through the gateway, add the problems the gateway
    answers itself, and point the document at the gateway."""
    routed = routed_operations(upstream)
    paths: dict[str, Any] = {}
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        kept = {
            key: _with_edge_problems(value, routed[(key, _shape(path))])
            for key, value in item.items()
            if (key, _shape(path)) in routed
        }
        if kept:
            kept.update(
                {k: v for k, v in item.items() if k in ("parameters", "summary", "description")}
            )
            paths[path] = kept
    components = dict(document.get("components") or {})
    components["schemas"] = {**(components.get("schemas") or {}), **PROBLEM_SCHEMAS}
    return {**document, "paths": paths, "components": components, "servers": [{"url": "/"}]}


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """One Swagger UI over every service's API, as served by the gateway."""
    config = {
        "urls": [{"name": name, "url": f"/openapi/{name}.json"} for name in DOCUMENTS],
        "urls.primaryName": "board",
        "dom_id": "#swagger-ui",
        "layout": "StandaloneLayout",
        "deepLinking": True,
        "persistAuthorization": True,
        **OFFLINE_PARAMETERS,
    }
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>API documentation</title>
<link rel="stylesheet" href="{asset_url("swagger-ui.css")}">
<link rel="icon" href="{asset_url("favicon-32x32.png")}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{asset_url("swagger-ui-bundle.js")}"></script>
<script src="{asset_url("swagger-ui-standalone-preset.js")}"></script>
<script>
const config = {json.dumps(config)};
config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset];
window.ui = SwaggerUIBundle(config);
</script>
</body>
</html>"""
    )


@router.get("/openapi/{name}.json")
async def openapi_document(name: str, request: Request) -> JSONResponse:
    """The OpenAPI document of the gateway itself or of one upstream service."""
    if name == GATEWAY:
        return JSONResponse(request.app.openapi())
    if name not in SERVICES:
        raise NotFound(f"no API document named {name!r}")
    proxy: Proxy = request.app.state.proxy
    reply = await proxy.upstreams.call(
        proxy.upstreams[name],
        "GET",
        "/openapi.json",
        [
            (b"accept", b"application/json"),
            (b"x-request-id", request_id_of(request.scope).encode()),
        ],
        b"",
        timeout=proxy.settings.DOCS_TIMEOUT_SECONDS,
        route="GET /openapi.json",
    )
    try:
        if reply.status != 200:
            raise ValueError(f"answered {reply.status}")
        document = json.loads(reply.body)
        if not isinstance(document, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise ServiceUnavailable(f"{name} did not provide its API document ({exc})") from exc
    return JSONResponse(public_document(name, document))
