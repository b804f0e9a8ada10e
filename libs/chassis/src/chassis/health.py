"""Health check API: liveness at /healthz, readiness at /readyz from registered dependency checks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chassis.metrics import DEPENDENCY_UP, PROCESS_READY

Check = Callable[[], Awaitable[object]]

#: Seconds each check may take; the checks run concurrently, so ``/readyz`` answers within about
#: this. Half the readiness probes' ``timeoutSeconds`` (2 s, deploy/k8s/base and
#: docker-compose.yml): a dependency that hangs instead of refusing (a silent Redis, dropped
#: packets) is then reported in the answer. A slower answer would be a failed probe, and would take
#: the process out of service for a dependency it only degrades around.
CHECK_TIMEOUT_SECONDS = 1.0


class NotReady(Exception):
    """Raised by a check whose message says it all (shown without the exception type)."""


class Health:
    """Readiness state of one process: dependency checks plus the shutting-down flag.

    A *degraded* check is a dependency the process works around (Redis for rate limits and
    caches, docs/CONVENTIONS.md "Degraded dependencies"): its failure shows as ``degraded: ...`` in
    the detail and as ``dependency_up 0``, but does not make the process unready. A check that
    has not answered within ``check_timeout`` seconds has failed (``TimeoutError``)."""

    def __init__(self, check_timeout: float = CHECK_TIMEOUT_SECONDS, service: str = "") -> None:
        self._checks: dict[str, Check] = {}
        self._degraded: set[str] = set()
        self.shutting_down = False
        self.started = False
        self.check_timeout = check_timeout
        self.service = service

    def add_check(self, name: str, check: Check, *, degraded: bool = False) -> None:
        self._checks[name] = check
        if degraded:
            self._degraded.add(name)

    async def run_checks(self) -> dict[str, str]:
        async def one(name: str, check: Check) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(), self.check_timeout)
            except Exception as exc:  # a failing dependency is data here, not a crash
                DEPENDENCY_UP.labels(self.service, name).set(0)
                state = "degraded" if name in self._degraded else "down"
                detail = str(exc) if isinstance(exc, NotReady) else f"{type(exc).__name__}: {exc}"
                return name, f"{state}: {detail}"[:300]
            DEPENDENCY_UP.labels(self.service, name).set(1)
            return name, "up"

        results = await asyncio.gather(*(one(n, c) for n, c in self._checks.items()))
        return dict(results)

    async def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether the process may get traffic, and each check's state; sets ``process_ready``."""
        ok, results = await self._evaluate()
        PROCESS_READY.labels(self.service).set(1 if ok else 0)
        return ok, results

    async def _evaluate(self) -> tuple[bool, dict[str, str]]:
        if self.shutting_down:
            return False, {"process": "shutting down"}
        if not self.started:
            return False, {"process": "starting"}
        results = await self.run_checks()
        return all(not v.startswith("down") for v in results.values()), results


router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """Liveness: the event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when every dependency the process cannot serve without answers and it is
    not shutting down; 503 otherwise. ``checks`` names each check's state (``up``,
    ``degraded: ...``, ``down: ...``)."""
    health: Health = request.app.state.health
    ok, checks = await health.ready()
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )
