"""HTTP method semantics in every process (chassis ``create_app``, RFC 9110 §9): HEAD answered from the GET,
OPTIONS and 405 with the ``Allow`` of every route of the path, 501 for an unimplemented method.
The kind of fault: a service answering HEAD with 405 and a 405 whose Allow misses methods."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter

from chassis.app import create_app
from chassis.lifecycle import Runtime
from chassis.settings import BaseServiceSettings

router = APIRouter(prefix="/api")


@router.get("/things/{thing_id}")
async def read_thing(thing_id: str) -> dict[str, str]:
    return {"id": thing_id, "name": "a thing"}


@router.patch("/things/{thing_id}")
async def edit_thing(thing_id: str) -> dict[str, str]:
    return {"id": thing_id}


@router.post("/things")
async def add_thing() -> dict[str, str]:
    return {"id": "new"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = BaseServiceSettings(SERVICE_NAME="unit-methods")
    app = create_app(settings, Runtime(settings.SERVICE_NAME), title="t", routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_head_is_the_get_without_its_body(client: httpx.AsyncClient) -> None:
    got = await client.get("/api/things/1")
    head = await client.head("/api/things/1")
    assert head.status_code == got.status_code == 200
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""


async def test_options_lists_every_route_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.options("/api/things/1")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, PATCH"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "TRACE", "CONNECT", "POST"])
async def test_405_carries_the_allow_of_every_route_of_the_path(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/api/things/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, PATCH"
    assert response.headers["content-type"] == "application/problem+json"


async def test_head_on_a_path_without_get_is_405(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/things")
    assert response.status_code == 405
    assert response.headers["allow"] == "OPTIONS, POST"


@pytest.mark.parametrize("method", ["FOO", "PROPFIND"])
async def test_an_unimplemented_method_is_501(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/api/things/1")
    assert response.status_code == 501
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_chassis_endpoints_answer_head(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/metrics", "/openapi.json"):
        response = await client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""
