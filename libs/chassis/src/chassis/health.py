"""Health check API: liveness at /healthz, readiness at /readyz from registered dependency checks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[object]]


class Health:
    """Readiness state of one process: dependency checks plus the shutting-down flag."""

    def __init__(self, check_timeout: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self.shutting_down = False
        self.started = False
        self.check_timeout = check_timeout

    def add_check(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def run_checks(self) -> dict[str, str]:
        async def one(name: str, check: Check) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(), self.check_timeout)
            except Exception as exc:  # a failing dependency is data here, not a crash
                return name, f"down: {type(exc).__name__}: {exc}"[:200]
            return name, "up"

        results = await asyncio.gather(*(one(n, c) for n, c in self._checks.items()))
        return dict(results)

    async def ready(self) -> tuple[bool, dict[str, str]]:
        if self.shutting_down:
            return False, {"process": "shutting down"}
        if not self.started:
            return False, {"process": "starting"}
        results = await self.run_checks()
        return all(v == "up" for v in results.values()), results


router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """Liveness: the event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: dependencies reachable and not shutting down."""
    health: Health = request.app.state.health
    ok, checks = await health.ready()
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )
