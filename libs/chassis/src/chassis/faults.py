"""Fault injection (for teaching and tests): per-command fail/delay flags kept in Redis."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

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

    def __init__(self, redis: Redis, *, enabled: bool, prefix: str = "") -> None:
        self.redis = redis
        self.enabled = enabled
        self.prefix = prefix

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
        """Delay or fail according to the flag; a no-op when injection is disabled."""
        fault = await self.get(service, kebab(command))
        if fault is None:
            return
        if fault.mode is FaultMode.DELAY:
            await asyncio.sleep(fault.delay_ms / 1000)
        elif fault.mode is FaultMode.FAIL:
            raise InjectedFault(f"fault injected into {service}/{kebab(command)}")
