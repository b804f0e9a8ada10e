"""Graceful startup and shutdown (12-factor IX): ordered start, and an ordered, logged stop on SIGTERM.

The shutdown sequence every process follows:

1. readiness turns 503 (``Health.shutting_down``), so load balancers stop sending traffic;
2. in-flight HTTP requests drain (uvicorn, bounded by ``SHUTDOWN_TIMEOUT_SECONDS``);
3. consumers stop and commit their offsets (``Phase.CONSUMERS``);
4. the outbox relay finishes its batch and the producer flushes (``Phase.RELAY``);
5. pools close (``Phase.POOLS``);
6. the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from chassis.health import Health
from chassis.logging import get_logger
from chassis.messaging.failures import Backoff, Outage

log = get_logger("chassis.lifecycle")


class Phase(IntEnum):
    """Shutdown phases; lower numbers stop first."""

    CONSUMERS = 3
    RELAY = 4
    POOLS = 5


STEP_NAMES = {
    Phase.CONSUMERS: "consumers stop and commit their offsets",
    Phase.RELAY: "relay finishes its batch and the producer flushes",
    Phase.POOLS: "pools close",
}


class BackgroundService(Protocol):
    """A long-running loop: ``run`` returns once ``stop`` has been requested."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class _Background:
    name: str
    service: BackgroundService
    phase: Phase
    task: asyncio.Task[None] | None = None


@dataclass
class _Hook:
    name: str
    fn: Callable[[], Awaitable[object]]
    phase: Phase = Phase.POOLS


@dataclass
class Runtime:
    """Owns one process's resources and background loops and starts/stops them in order."""

    service: str
    health: Health = field(default_factory=Health)
    #: First and longest pause (seconds) before a crashed loop is restarted; doubles in between.
    restart_backoff: float = 1.0
    restart_backoff_max: float = 30.0
    #: A loop that ran this long before crashing starts a new outage (backoff and log reset).
    healthy_run_seconds: float = 60.0
    _startup: list[_Hook] = field(default_factory=list)
    _background: list[_Background] = field(default_factory=list)
    _closers: list[_Hook] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.health.service:
            self.health.service = self.service

    def on_startup(self, name: str, fn: Callable[[], Awaitable[object]]) -> None:
        """Run ``fn`` at startup, in registration order, before the process reports ready."""
        self._startup.append(_Hook(name, fn))

    def add_background(self, name: str, service: BackgroundService, phase: Phase) -> None:
        """Run ``service.run()`` for the life of the process; stop it in ``phase``."""
        self._background.append(_Background(name, service, phase))

    def on_shutdown(
        self, name: str, fn: Callable[[], Awaitable[object]], phase: Phase = Phase.POOLS
    ) -> None:
        """Call ``fn`` in ``phase`` (after that phase's background loops have stopped)."""
        self._closers.append(_Hook(name, fn, phase))

    async def start(self) -> None:
        for hook in self._startup:
            log.info("startup", step=hook.name)
            await hook.fn()
        for bg in self._background:
            bg.task = asyncio.create_task(self._supervise(bg), name=bg.name)
        self.health.started = True
        log.info("startup.complete", background=[b.name for b in self._background])

    async def _supervise(self, bg: _Background) -> None:
        """Restart a crashed loop after a capped, growing pause: a database or broker outage must
        not kill the worker nor make it spin, and it resumes by itself. One outage is logged
        when it starts (with the traceback) and when a restarted loop has run for a while."""
        outage = Outage(
            f"background {bg.name}",
            Backoff(initial=self.restart_backoff, cap=max(self.restart_backoff_max, 0.001)),
            log,
        )
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await bg.service.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.health.shutting_down:
                    return
                if loop.time() - started >= self.healthy_run_seconds:
                    outage.succeeded()  # it ran fine for a while: this is a new outage
                delay = outage.failed(exc)
                await asyncio.sleep(delay)

    async def stop(self, timeout: float = 20.0) -> None:
        """Stop everything, phase by phase, logging each step. ``timeout`` (seconds) bounds each
        background loop's stop and each closer separately, so a stuck one costs at most that
        much and the next still runs; the whole takes longer when several are stuck."""
        self.health.shutting_down = True
        log.info("shutdown.step", step=2, action="in-flight HTTP requests drained")
        for phase in Phase:
            log.info("shutdown.step", step=int(phase), action=STEP_NAMES[phase])
            loops = [b for b in self._background if b.phase == phase]
            await asyncio.gather(*(self._stop_one(b, timeout) for b in loops))
            for hook in (h for h in self._closers if h.phase == phase):
                try:
                    await asyncio.wait_for(hook.fn(), timeout)
                except Exception:
                    log.exception("shutdown.hook_failed", name=hook.name)
                else:
                    log.info("shutdown.closed", name=hook.name)

    async def _stop_one(self, bg: _Background, timeout: float) -> None:
        if bg.task is None:
            return
        try:
            await asyncio.wait_for(bg.service.stop(), timeout)
            await asyncio.wait_for(asyncio.shield(bg.task), timeout)
        except Exception:
            log.exception("shutdown.loop_failed", name=bg.name)
            bg.task.cancel()
            with contextlib.suppress(BaseException):
                await bg.task
        log.info("shutdown.stopped", name=bg.name)
