"""Process entrypoint: uvicorn with a SIGTERM sequence that turns readiness 503 before draining."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

import uvicorn
from fastapi import FastAPI

from chassis.health import Health
from chassis.logging import get_logger

log = get_logger("chassis.runner")


#: Seconds between two ticks of the server's main loop, which refreshes the ``Date`` header (a
#: value in whole seconds). uvicorn's own loop ticks every 100 ms to notice ``should_exit``: ten
#: wake-ups a second in a process with nothing to do. Here an exit request wakes it at once.
TICK_SECONDS = 1.0


class GracefulServer(uvicorn.Server):
    """On the first SIGTERM/SIGINT: readiness 503 at once, keep serving for the drain delay,
    then let uvicorn stop accepting and drain in-flight requests. A second signal forces exit."""

    def __init__(self, config: uvicorn.Config, health: Health, drain_seconds: float) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_requested = asyncio.Event()
        super().__init__(config)
        self.health = health
        self.drain_seconds = drain_seconds
        self._signalled = False

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        """Set from a signal handler or the drain timer's thread: wakes the main loop safely."""
        self._should_exit = value
        if value and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self._loop.call_soon_threadsafe(self._exit_requested.set)

    async def main_loop(self) -> None:
        """uvicorn's main loop at one tick a second (``TICK_SECONDS``), on the second, and
        woken at once by ``should_exit``."""
        self._loop = asyncio.get_running_loop()
        # on_tick refreshes the Date header when its counter is a multiple of 10: every tick
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                wait = TICK_SECONDS - time.time() % TICK_SECONDS
                await asyncio.wait_for(self._exit_requested.wait(), max(wait, 0.001))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._signalled:
            log.warning("shutdown.forced", signal=sig)
            self.force_exit = True
            return
        self._signalled = True
        self.health.shutting_down = True
        log.info("shutdown.step", step=1, action="readiness turns 503", signal=sig)
        timer = threading.Timer(self.drain_seconds, self._begin_drain)
        timer.daemon = True
        timer.start()

    def _begin_drain(self) -> None:
        log.info("shutdown.step", step=2, action="listener closes, in-flight HTTP requests drain")
        self.should_exit = True


def serve(
    app: FastAPI,
    *,
    host: str,
    port: int,
    drain_seconds: float,
    timeout_seconds: float,
    forwarded_allow_ips: Sequence[str],
) -> None:
    """Run ``app`` until SIGTERM, then exit 0 after the ordered shutdown.

    ``forwarded_allow_ips`` (IPs or CIDRs) are the proxies whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` uvicorn believes when it sets the request's client address; empty
    means none, and the client is the TCP peer. Passed explicitly, so uvicorn's own reading of
    the environment (loopback by default) never decides who may name a client address."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(max(1, timeout_seconds)),
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=list(forwarded_allow_ips),
        server_header=False,
    )
    health: Health = app.state.health
    server = GracefulServer(config, health, drain_seconds)
    server.run()
    if not server.started:
        log.error("process.failed_to_start", port=port)
        sys.exit(1)
    log.info("shutdown.step", step=6, action="process exits 0")
    sys.exit(0)
