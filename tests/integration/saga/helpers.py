"""Helpers for orchestrator tests: start a saga directly, wait for a status, read a metric."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from prometheus_client import REGISTRY

from saga.engine import SagaEngine
from saga.orchestrator import SagaState
from tests.support.infra import wait_for

#: The engine tests' fixed start of time and step timeout (their clock is set by hand).
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
STEP_TIMEOUT = dt.timedelta(seconds=10)


class Clock:
    """A clock the test moves by hand: ``clock.now = T0 + ...``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


async def start(
    engine: SagaEngine, saga_type: str, data: dict[str, Any], initiator: uuid.UUID | None = None
) -> str:
    async def load() -> dict[str, Any]:
        return data

    started = await engine.start(saga_type, initiator or uuid.uuid4(), load)
    return started.saga_id


async def wait_for_status(
    engine: SagaEngine, saga_id: str, status: str, timeout: float = 45.0
) -> SagaState:
    async def reached() -> SagaState | None:
        stored = await engine.get(saga_id)
        return stored.state if stored and stored.state.status.value == status else None

    return cast(
        SagaState,
        await wait_for(reached, timeout=timeout, interval=0.1, message=f"{saga_id} {status}"),
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
