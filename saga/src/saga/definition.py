"""Saga definition DSL: a saga is a declarative list of steps, each a participant command and its compensation.

In the spirit of FTGO's ``step().invokeParticipant().withCompensation()``::

    ORDER = (
        SagaDefinition("order")
        .step("reserve-credit")
        .invoke("customer", "ReserveCredit", payload=fields("customer_id", "total"))
        .with_compensation("ReleaseCredit", payload=fields("customer_id"))
        .step("approve-order")
        .invoke("order", "ApproveOrder", payload=fields("order_id"))
        .build()
    )

A payload builder receives the saga's data: the parameters it was started with, merged with
the ``result`` of every step that has succeeded so far.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

#: Builds a command's payload from the saga's data.
PayloadBuilder = Callable[[Mapping[str, Any]], dict[str, Any]]


def fields(*names: str) -> PayloadBuilder:
    """A payload made of these keys of the saga's data, unchanged."""

    def build(data: Mapping[str, Any]) -> dict[str, Any]:
        return {name: data[name] for name in names}

    build.__qualname__ = f"fields{names!r}"
    return build


@dataclass(frozen=True)
class Invocation:
    """One command sent to one participant."""

    participant: str
    command: str
    payload: PayloadBuilder


@dataclass(frozen=True)
class Step:
    """A forward command and, unless the step cannot be undone, its compensation."""

    name: str
    action: Invocation
    compensation: Invocation | None = None


@dataclass(frozen=True)
class SagaDefinition:
    """An ordered, immutable list of steps; build it with ``.step(...)`` ... ``.build()``.

    ``exclusive_key`` names a data key: at most one saga of this type may be running per value
    (e.g. one withdrawal per member).
    """

    name: str
    exclusive_key: str | None = None
    steps: tuple[Step, ...] = ()

    def step(self, name: str) -> StepBuilder:
        return StepBuilder(self, name)

    def index_of(self, step_name: str) -> int:
        for index, step in enumerate(self.steps):
            if step.name == step_name:
                return index
        raise KeyError(f"{self.name} has no step {step_name!r}")

    def commands_of(self, participant: str) -> set[str]:
        """Every command (forward and compensation) this saga sends to ``participant``."""
        invocations = [s.action for s in self.steps] + [
            s.compensation for s in self.steps if s.compensation
        ]
        return {i.command for i in invocations if i.participant == participant}


@dataclass(frozen=True)
class StepBuilder:
    """The step being declared; ``.step()`` or ``.build()`` closes it."""

    saga: SagaDefinition
    name: str
    action: Invocation | None = None
    compensation: Invocation | None = None

    def invoke(
        self, participant: str, command: str, *, payload: PayloadBuilder = fields()
    ) -> StepBuilder:
        """The forward command of this step."""
        if self.action is not None:
            raise ValueError(f"step {self.name!r} already invokes {self.action.command}")
        return replace(self, action=Invocation(participant, command, payload))

    def with_compensation(self, command: str, *, payload: PayloadBuilder = fields()) -> StepBuilder:
        """The command that undoes this step, sent to the same participant."""
        if self.action is None:
            raise ValueError(f"step {self.name!r}: invoke() comes before with_compensation()")
        if self.compensation is not None:
            raise ValueError(f"step {self.name!r} already has a compensation")
        return replace(self, compensation=Invocation(self.action.participant, command, payload))

    def step(self, name: str) -> StepBuilder:
        return self._close().step(name)

    def build(self) -> SagaDefinition:
        return self._close()

    def _close(self) -> SagaDefinition:
        if self.action is None:
            raise ValueError(f"step {self.name!r} of {self.saga.name} invokes no command")
        if any(s.name == self.name for s in self.saga.steps):
            raise ValueError(f"{self.saga.name} declares step {self.name!r} twice")
        step = Step(self.name, self.action, self.compensation)
        return replace(self.saga, steps=(*self.saga.steps, step))
