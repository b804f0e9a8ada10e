"""Self-hosted API documentation: every process's ``/docs`` works with no network beyond the host.

For the gateway's aggregated page and each service's own page (built in-process, nothing
started): the HTML names no ``http(s)://`` address at all, so the browser loads nothing from
outside the process; every script, style sheet and icon it links is served by the process with
200 and the right content type; and Swagger UI's online validator is switched off.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

import board.bootstrap
import board.config
import gateway.bootstrap
import gateway.config
import member.bootstrap
import member.config
import qna.bootstrap
import qna.config
import saga.bootstrap
import saga.config

#: Nothing is connected: building an app opens no connection, and no test here needs one.
UNREACHABLE = {
    "DATABASE_URL": "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nothing",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}
LINKED = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _signing_key() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


APPS: dict[str, Callable[[], FastAPI]] = {
    "gateway": lambda: gateway.bootstrap.build_api(
        gateway.config.Settings(REDIS_URL=UNREACHABLE["REDIS_URL"], RATE_LIMIT_PER_MINUTE=0)
    ),
    "member": lambda: member.bootstrap.build_api(
        member.config.Settings.model_validate({**UNREACHABLE, "JWT_PRIVATE_KEY": _signing_key()})
    ),
    "board": lambda: board.bootstrap.build_api(board.config.Settings.model_validate(UNREACHABLE)),
    "qna": lambda: qna.bootstrap.build_api(qna.config.Settings.model_validate(UNREACHABLE)),
    "saga": lambda: saga.bootstrap.build_api(saga.config.Settings.model_validate(UNREACHABLE)),
}


@pytest.mark.parametrize("name", APPS)
async def test_docs_load_nothing_from_outside_the_process(name: str) -> None:
    transport = httpx.ASGITransport(app=APPS[name]())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert re.findall(r"https?://", page.text) == []
        assert re.search(r'"validatorUrl":\s*null', page.text)
        linked = LINKED.findall(page.text)
        assert {"swagger-ui.css", "swagger-ui-bundle.js"} <= {
            url.rsplit("/", 1)[-1] for url in linked
        }
        for url in linked:
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert asset.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
            assert len(asset.content) > 0


async def test_only_the_listed_assets_are_served() -> None:
    transport = httpx.ASGITransport(app=APPS["board"]())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for name in ("index.html", "swagger-initializer.js", "..%2F__init__.py"):
            missing = await client.get(f"/docs/assets/{name}")
            assert missing.status_code == 404, name
            assert missing.headers["content-type"] == "application/problem+json"
