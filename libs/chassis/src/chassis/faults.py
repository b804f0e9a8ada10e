"""Fault injection (for teaching and tests): per-command fail/delay flags kept in Redis.

Redis is a dependency the process degrades around (docs/CONVENTIONS.md "Degraded dependencies"): a
participant reads its flags with ``active``, which fails open, so a Redis outage never blocks a saga
command or sends it to a dead-letter topic; it is logged and counted in
``degraded_dependency_failures_total{dependency="redis"}``. The admin API reads and writes with
``get``/``set``, which raise, so an operator sees the outage.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis.logging import get_logger
from chassis.metrics import DEGRADED_DEPENDENCY_FAILURES

log = get_logger("chassis.faults")

SERVICES = ("member", "board", "qna")


class FaultMode(StrEnum):
    FAIL = "fail"
    DELAY = "delay"
    OFF = "off"


@dataclass(frozen=True)
class Fault:
    mode: FaultMode
    delay_ms: int = 0


class InjectedFault(Exception):
    """Raised when a flag tells a command to fail."""


def kebab(command: str) -> str:
    """``RetireAuthor`` -> ``retire-author``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", command).lower()


class FaultFlags:
    """Reads and writes the flags; every replica sees the same Redis keys."""

    def __init__(
        self, redis: Redis, *, enabled: bool, prefix: str = "", timeout: float = 0.5
    ) -> None:
        self.redis = redis
        self.enabled = enabled
        self.prefix = prefix
        self.timeout = timeout  # seconds a participant waits for a flag before going on without

    def _key(self, service: str, command: str) -> str:
        return f"{self.prefix}faults:{service}:{command}"

    async def get(self, service: str, command: str) -> Fault | None:
        """The active fault for ``service``/``command`` (kebab case), or None."""
        if not self.enabled:
            return None
        raw = await self.redis.get(self._key(service, command))
        if not raw:
            return None
        data = json.loads(raw)
        fault = Fault(FaultMode(data["mode"]), int(data.get("delay_ms", 0)))
        return None if fault.mode is FaultMode.OFF else fault

    async def active(self, service: str, command: str) -> Fault | None:
        """Like ``get``, for the participant's path: when Redis cannot answer within ``timeout``
        there is no fault (fail open), with a warning and a metric."""
        if not self.enabled:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await self.get(service, command)
        except (RedisError, OSError, TimeoutError) as exc:
            DEGRADED_DEPENDENCY_FAILURES.labels(service, "redis", "fault_flags").inc()
            log.warning(
                "faults.unavailable",
                service=service,
                command=command,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return None

    async def set(self, service: str, command: str, fault: Fault) -> None:
        key = self._key(service, command)
        if fault.mode is FaultMode.OFF:
            await self.redis.delete(key)
        else:
            await self.redis.set(key, json.dumps({"mode": fault.mode, "delay_ms": fault.delay_ms}))

    async def clear_all(self) -> None:
        async for key in self.redis.scan_iter(f"{self.prefix}faults:*"):
            await self.redis.delete(key)

    async def apply(self, service: str, command: str) -> None:
        """Delay or fail according to the flag; a no-op when injection is disabled (or Redis is
        unreachable)."""
        fault = await self.active(service, kebab(command))
        if fault is None:
            return
        if fault.mode is FaultMode.DELAY:
            await asyncio.sleep(fault.delay_ms / 1000)
        elif fault.mode is FaultMode.FAIL:
            raise InjectedFault(f"fault injected into {service}/{kebab(command)}")
