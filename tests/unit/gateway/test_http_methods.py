"""HTTP method semantics at the edge (RFC 9110 §9), over the whole route table and the gateway's own
endpoints: OPTIONS is 204 with Allow, a method the path lacks is 405 with Allow (TRACE and CONNECT
included), a method nobody implements is 501. The gateway app answers these itself (no upstream
is involved); HEAD against real upstreams is in tests/system/gateway/test_http_methods.py. On a page
path the refusals are the gateway's HTML pages (tests/unit/gateway/test_front_end.py)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from chassis.methods import allow_header
from gateway.bootstrap import build_api
from gateway.config import Settings
from gateway.routes import FRONT_END, ROUTES

#: Every routed path template, with its methods: the table is the only source.
TEMPLATES: dict[str, set[str]] = {}
for _route in ROUTES:
    TEMPLATES.setdefault(_route.path, set()).add(_route.method)

#: The gateway's own endpoints (not in the table), with their methods.
OWN = {
    "/healthz": {"GET"},
    "/readyz": {"GET"},
    "/metrics": {"GET"},
    "/docs": {"GET"},
    "/docs/assets/swagger-ui.css": {"GET"},
    "/openapi/board.json": {"GET"},
    "/api/me/dashboard": {"GET"},
}
#: Page paths (the web front end, ``routes.FRONT_END``): any path outside the reserved prefixes.
PAGES = {page: set(FRONT_END.methods) for page in ("/", "/boards", "/sagas/1/steps")}
PATHS = {**TEMPLATES, **OWN, **PAGES}
PARAMS = {"service": "qna", "command": "retire-author"}


def concrete(template: str) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: PARAMS.get(m.group(1), str(uuid.uuid4())), template)


@pytest.fixture(scope="module")
def app() -> object:
    return build_api(Settings(REDIS_URL="redis://127.0.0.1:1/0", RATE_LIMIT_PER_MINUTE=0))


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_refusal(response: httpx.Response, status: int, template: str) -> None:
    """A problem document, or on a page path the gateway's HTML page (``gateway.pages``)."""
    assert response.status_code == status, response.text
    if template in PAGES:
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert f"HTTP {status}" in response.text
        return
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


@pytest.mark.parametrize("template", PATHS, ids=str)
async def test_options_is_204_with_the_paths_methods_and_needs_no_token(
    client: httpx.AsyncClient, template: str
) -> None:
    """Kind: a method RFC 9110 defines for every resource answered as 405 (or 401)."""
    response = await client.options(concrete(template))
    assert response.status_code == 204, response.text
    assert response.headers["allow"] == allow_header(PATHS[template])
    assert "HEAD" in response.headers["allow"].split(", ") or "GET" not in PATHS[template]
    assert response.content == b""


@pytest.mark.parametrize("template", PATHS, ids=str)
async def test_a_method_the_path_lacks_is_405_with_allow(
    client: httpx.AsyncClient, template: str
) -> None:
    lacking = sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - PATHS[template])
    for method in [*lacking, "TRACE", "CONNECT"]:
        response = await client.request(method, concrete(template))
        assert_refusal(response, 405, template)
        assert response.headers["allow"] == allow_header(PATHS[template]), method


@pytest.mark.parametrize("template", PATHS, ids=str)
@pytest.mark.parametrize("method", ["FOO", "PROPFIND", "BREW"])
async def test_a_method_nobody_implements_is_501(
    client: httpx.AsyncClient, template: str, method: str
) -> None:
    """Kind: an unknown method answered as if the resource lacked it (RFC 9110 §9.1: 501)."""
    assert_refusal(await client.request(method, concrete(template)), 501, template)


@pytest.mark.parametrize("template", [t for t, m in PATHS.items() if "GET" not in m], ids=str)
async def test_head_where_there_is_no_get_is_405(client: httpx.AsyncClient, template: str) -> None:
    response = await client.head(concrete(template))
    assert response.status_code == 405
    assert response.headers["allow"] == allow_header(PATHS[template])
    assert response.content == b""


@pytest.mark.parametrize("path", ["/api/nothing-here", "/internal/x", "/docs/x", "/boards/"])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "OPTIONS", "HEAD", "TRACE", "FOO"])
async def test_unknown_paths_stay_404_or_501(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Under the reserved prefixes, and on a path that is no page, nothing is sent to the front
    end: the gateway's own problem, whatever the method."""
    response = await client.request(method, path)
    assert response.status_code == (501 if method == "FOO" else 404)
    if method == "HEAD":
        assert response.content == b""
    else:
        assert response.headers["content-type"] == "application/problem+json"


def test_cors_allows_the_tables_methods() -> None:
    from gateway.routes import TABLE

    assert TABLE.methods == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    assert set(FRONT_END.methods) <= TABLE.methods
