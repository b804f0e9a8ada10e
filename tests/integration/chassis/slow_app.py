"""A minimal chassis-based process for shutdown and logging tests: one slow route, one loop, one pool."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, FastAPI

from chassis.app import create_app
from chassis.cli import serve_http
from chassis.lifecycle import Phase, Runtime
from chassis.logging import get_logger
from chassis.settings import BaseServiceSettings

router = APIRouter()
log = get_logger("slow_app")


@router.get("/slow")
async def slow() -> dict[str, str]:
    """Answer after SLOW_SECONDS."""
    log.info("slow.started")
    await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
    return {"status": "done"}


class TickingLoop:
    """Stands in for a consumer: runs until asked to stop."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()


def build(settings: BaseServiceSettings) -> FastAPI:
    runtime = Runtime(settings.SERVICE_NAME)
    runtime.add_background("ticking consumer", TickingLoop(), Phase.CONSUMERS)

    async def close_pool() -> None:
        await asyncio.sleep(0)

    runtime.on_shutdown("scratch pool", close_pool, Phase.POOLS)
    return create_app(settings, runtime, title="slow", routers=[router])


if __name__ == "__main__":
    settings = BaseServiceSettings()
    serve_http(settings, build, port=settings.HTTP_PORT)
