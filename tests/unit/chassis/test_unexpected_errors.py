"""An unexpected exception in a route is a 500 problem, and the keep-alive connection stays usable.

Kind: one client's requests degrade another's. Starlette's ``ServerErrorMiddleware`` answers the
500 and then re-raises, and uvicorn closes the connection of a request whose app raised. Behind
the gateway's connection pool the next request on that connection, often another client's, met
a closed connection: a 503 ("member is unavailable") and a breaker failure, from a 500 that the
breaker is meant to ignore (docs/gateway.md, "What counts").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, BackgroundTasks, FastAPI

from chassis.app import create_app
from chassis.lifecycle import Runtime
from chassis.settings import BaseServiceSettings
from tests.support.processes import free_port

router = APIRouter()


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("a bug one request runs into")


@router.get("/late")
async def late(tasks: BackgroundTasks) -> dict[str, str]:
    async def fail() -> None:
        raise RuntimeError("a background task that fails after the answer")

    tasks.add_task(fail)
    return {"status": "accepted"}


@router.get("/ok")
async def ok() -> dict[str, str]:
    return {"status": "ok"}


def build() -> FastAPI:
    settings = BaseServiceSettings(SERVICE_NAME="unit-unexpected")
    return create_app(settings, Runtime(settings.SERVICE_NAME), title="t", routers=[router])


async def test_the_app_answers_a_500_problem_and_raises_nothing_to_the_server() -> None:
    # raise_app_exceptions (the default) surfaces what would reach uvicorn
    transport = httpx.ASGITransport(app=build())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom", headers={"x-request-id": "req-1"})
        late = await client.get("/late")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-1"
    assert response.json()["detail"] == "an unexpected error occurred"
    assert late.status_code == 200


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        build(),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    yield port
    server.should_exit = True
    await task


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    """One HTTP/1.1 request on an open connection; its status line (raises if it was closed)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("failing", ["/boom", "/late"])
async def test_the_next_request_on_the_same_connection_is_served(
    server_port: int, failing: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    try:
        first = await exchange(reader, writer, failing)
        try:
            second = await exchange(reader, writer, "/ok")
        except (asyncio.IncompleteReadError, ConnectionError):
            second = b""  # the server closed the keep-alive connection
    finally:
        writer.close()
    assert first.startswith(b"HTTP/1.1 500" if failing == "/boom" else b"HTTP/1.1 200")
    assert second == b"HTTP/1.1 200 OK"
