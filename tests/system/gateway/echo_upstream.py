"""Test double of an upstream service, run as a real process: it answers every request with what it
received, so a test can see which service the gateway reached, and with which path and headers.

    ECHO_NAME=board ECHO_PORT=18002 python -m tests.system.gateway.echo_upstream

- ``ECHO_JWKS_FILE``: served at ``/.well-known/jwks.json`` (read on every request, so a test
  rotates keys by rewriting the file), as the member service does.
- Per request: ``X-Echo-Status: 503`` answers with that status, ``X-Echo-Delay: 2.5`` answers
  after that many seconds, ``X-Echo-Pad: 100000`` adds that many bytes to the answer; each
  ``X-Echo-Set-Cookie`` header becomes one ``Set-Cookie`` of the answer, and
  ``X-Echo-Location`` its ``Location`` (with ``X-Echo-Status: 303``, a form's redirect).
- For every later request: ``PUT /_echo/mode {"status": 500 | null, "delay": 0.0}`` (sent to
  the echo directly, not through the gateway).
- A body holding a JSON-escaped NUL (``\\u0000``) gets a 500, as a service gets when
  PostgreSQL refuses the text: an error one request provokes while the service is healthy.
- It reports ``client``, the client address uvicorn resolved. Like a service behind the
  gateway (``chassis.settings`` ``FORWARDED_ALLOW_IPS``), it believes ``X-Forwarded-For``
  from loopback only (``ECHO_FORWARDED_ALLOW_IPS`` changes that).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

NAME = os.environ.get("ECHO_NAME", "echo")
PORT = int(os.environ.get("ECHO_PORT", "18000"))
JWKS_FILE = os.environ.get("ECHO_JWKS_FILE", "")
FORWARDED_ALLOW_IPS = os.environ.get("ECHO_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

#: A document shaped like a service's: one public path, one internal one.
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": f"{NAME} (echo upstream)", "version": "0"},
    "paths": {
        "/api/posts/{id}": {
            "get": {"summary": "read"},
            "delete": {"summary": "delete"},
            "put": {"summary": "not routed by the gateway"},
        },
        "/internal/secret": {"get": {"summary": "never shown through the gateway"}},
    },
}

app = FastAPI(title=OPENAPI["info"]["title"], openapi_url=None, docs_url=None, redoc_url=None)
mode: dict[str, Any] = {"status": None, "delay": 0.0}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/openapi.json")
async def openapi() -> dict[str, Any]:
    return OPENAPI


@app.get("/.well-known/jwks.json")
def jwks() -> Response:
    if not JWKS_FILE:
        return JSONResponse({"keys": []})
    return Response(Path(JWKS_FILE).read_bytes(), media_type="application/json")


@app.put("/_echo/mode")
async def set_mode(request: Request) -> dict[str, Any]:
    mode.update(await request.json())
    return mode


@app.api_route("/{path:path}", methods=ALL_METHODS)
async def echo(request: Request) -> Response:
    delay = float(request.headers.get("x-echo-delay", mode["delay"]) or 0)
    status = int(request.headers.get("x-echo-status", mode["status"] or 200))
    if delay:
        await asyncio.sleep(delay)
    body = await request.body()
    if b"\\u0000" in body:
        status = 500
    query = request.scope["query_string"].decode("latin-1")
    seen = {"upstream": NAME, "path": request.url.path, "query": query}
    headers: dict[str, str] = {}
    for name, value in request.headers.raw:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    content = {
        **seen,
        "method": request.method,
        "client": request.client.host if request.client else None,
        "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
        "headers": headers,
        "body": body.decode("latin-1"),
        "items": [seen],  # so list readers (the dashboard) find a page
        "pad": "x" * int(request.headers.get("x-echo-pad", "0") or 0),
    }
    response = Response(
        json.dumps(content),
        status_code=status,
        media_type="application/json",
        headers={"X-Echo-Upstream": NAME},
    )
    for name, value in request.headers.raw:
        if name == b"x-echo-set-cookie":
            response.raw_headers.append((b"set-cookie", value))
        elif name == b"x-echo-location":
            response.raw_headers.append((b"location", value))
    return response


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=PORT,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=FORWARDED_ALLOW_IPS,
    )
