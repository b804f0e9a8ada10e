"""Test double of the issuer's JWKS endpoint: a real HTTP server (uvicorn, in the test's event loop)
serving a ``TokenIssuer``'s keys, so a verifier fetches them over TCP as it does from member."""

from __future__ import annotations

import asyncio
import json

import uvicorn
from starlette.types import Receive, Scope, Send

from tests.support.processes import free_port
from tests.support.tokens import TokenIssuer

PATH = "/.well-known/jwks.json"


class JwksServer:
    """Serves ``{"keys": [...]}`` of ``issuers`` at ``http://127.0.0.1:<port>/.well-known/jwks.json``;
    ``issuers`` may be changed while it runs (a key rotation)."""

    def __init__(self, *issuers: TokenIssuer) -> None:
        self.issuers = list(issuers)
        self.port = free_port()
        self.requests = 0
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._app,
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                interface="asgi3",
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.requests += 1
        body = json.dumps({"keys": [i.jwk() for i in self.issuers]}).encode()
        status = 200 if scope["path"] == PATH else 404
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def start(self) -> JwksServer:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raise what stopped it
            await asyncio.sleep(0.02)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
