"""API schemas: what the saga API accepts and returns."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Self

from pydantic import BaseModel, Field, model_validator

from chassis.faults import FaultMode


class SagaStarted(BaseModel):
    """202 body of a request that started a saga."""

    saga_id: uuid.UUID


class SagaStepPublic(BaseModel):
    name: str
    status: str = Field(
        description="PENDING, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, COMPENSATING, COMPENSATED "
        "or COMPENSATION_FAILED"
    )
    kind: str = Field(description="compensatable, pivot or retriable (docs/sagas.md)")
    retries: int = Field(
        description="times the forward command was re-sent after a timeout or tried again "
        "after a refusal"
    )


class SagaPublic(BaseModel):
    id: uuid.UUID
    type: str
    status: str = Field(description="RUNNING, COMPENSATING, COMPLETED, COMPENSATED or FAILED")
    steps: list[SagaStepPublic]
    failure_reason: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None


class FaultUpdate(BaseModel):
    """Make a participant command fail, or delay it, or behave again."""

    mode: FaultMode
    delay_ms: int = Field(default=0, ge=0, le=60_000)

    @model_validator(mode="after")
    def delay_needs_a_duration(self) -> Self:
        if self.mode is FaultMode.DELAY and self.delay_ms == 0:
            raise ValueError("mode 'delay' needs delay_ms > 0")
        return self


class FaultPublic(BaseModel):
    service: str
    command: str
    mode: FaultMode
    delay_ms: int


class FaultsPublic(BaseModel):
    """The fault flags that are on, and every participant command a flag can be set on
    (``{service: [command, ...]}``, kebab case) so an admin screen can offer them all."""

    items: list[FaultPublic]
    commands: dict[str, list[str]]
