"""Saga definition DSL: a saga is a declarative list of steps, each of a kind, a participant command and maybe its compensation.

In the spirit of FTGO's ``step().invokeParticipant().withCompensation()``, with the step kinds
of Richardson's *Microservices Patterns* (ch. 4, "Structure of a saga") in the step's name::

    ORDER = (
        SagaDefinition("order")
        .compensatable_step("reserve-credit")
        .invoke("customer", "ReserveCredit", payload=fields("customer_id", "total"))
        .with_compensation("ReleaseCredit", payload=fields("customer_id"))
        .pivot_step("authorize-card")
        .invoke("accounting", "AuthorizeCard", payload=fields("order_id", "total"))
        .retriable_step("approve-order")
        .invoke("order", "ApproveOrder", payload=fields("order_id"))
        .build()
    )

- *compensatable*: may be refused, and can be undone by its compensation;
- *pivot*: the go/no-go step. If it is refused, the compensatable steps before it are undone;
  once it succeeded the saga will complete. It has no compensation;
- *retriable*: follows the pivot and cannot be refused for a business reason; it is retried
  until it succeeds, and has no compensation.

``build()`` checks that order: compensatable steps first (each with a compensation), then at
most one pivot, then the retriable steps. A payload builder receives the saga's data: the
parameters it was started with, merged with the ``result`` of every step that has succeeded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

#: Builds a command's payload from the saga's data.
PayloadBuilder = Callable[[Mapping[str, Any]], dict[str, Any]]


def fields(*names: str) -> PayloadBuilder:
    """A payload made of these keys of the saga's data, unchanged."""

    def build(data: Mapping[str, Any]) -> dict[str, Any]:
        return {name: data[name] for name in names}

    build.__qualname__ = f"fields{names!r}"
    return build


class StepKind(StrEnum):
    """Richardson's three kinds of saga step (Microservices Patterns, ch. 4)."""

    COMPENSATABLE = "compensatable"
    PIVOT = "pivot"
    RETRIABLE = "retriable"

    @property
    def order(self) -> int:
        """Where the kind may stand: compensatable (0) < pivot (1) < retriable (2)."""
        return list(StepKind).index(self)


@dataclass(frozen=True)
class Invocation:
    """One command sent to one participant."""

    participant: str
    command: str
    payload: PayloadBuilder


@dataclass(frozen=True)
class Step:
    """A forward command of some kind and, for a compensatable step, the command that undoes it."""

    name: str
    kind: StepKind
    action: Invocation
    compensation: Invocation | None = None

    @property
    def retried_on_timeout(self) -> bool:
        """At or after the pivot the work may have been done and cannot be undone: a timeout
        re-sends the command instead of compensating (docs/sagas.md)."""
        return self.kind is not StepKind.COMPENSATABLE


@dataclass(frozen=True)
class SagaDefinition:
    """An ordered, immutable list of steps; build it with ``.compensatable_step(...)``,
    ``.pivot_step(...)``, ``.retriable_step(...)`` ... ``.build()``.

    ``exclusive_key`` names a data key: at most one saga of this type may be running per value
    (e.g. one withdrawal per member). With ``once_per_key`` as well, a value whose saga has
    COMPLETED is taken for good: a new start for it is refused with 409 and leaves no saga row
    (a withdrawn member cannot withdraw again, docs/sagas.md). A COMPENSATED or FAILED saga does
    not take the value.
    """

    name: str
    exclusive_key: str | None = None
    once_per_key: bool = False

    def __post_init__(self) -> None:
        if self.once_per_key and self.exclusive_key is None:
            raise ValueError(f"{self.name}: once_per_key needs an exclusive_key")

    steps: tuple[Step, ...] = ()

    def compensatable_step(self, name: str) -> StepBuilder:
        return StepBuilder(self, name, StepKind.COMPENSATABLE)

    def pivot_step(self, name: str) -> StepBuilder:
        return StepBuilder(self, name, StepKind.PIVOT)

    def retriable_step(self, name: str) -> StepBuilder:
        return StepBuilder(self, name, StepKind.RETRIABLE)

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
    """The step being declared; the next ``.*_step()`` or ``.build()`` closes it."""

    saga: SagaDefinition
    name: str
    kind: StepKind
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

    def compensatable_step(self, name: str) -> StepBuilder:
        return self._close().compensatable_step(name)

    def pivot_step(self, name: str) -> StepBuilder:
        return self._close().pivot_step(name)

    def retriable_step(self, name: str) -> StepBuilder:
        return self._close().retriable_step(name)

    def build(self) -> SagaDefinition:
        """Close the last step and check the saga's structure.

        Raises ValueError unless: compensatable steps come first, each with a compensation; at
        most one pivot, without compensation; retriable steps only after a pivot, without
        compensation."""
        saga = self._close()
        steps = saga.steps
        for before, after in itertools.pairwise(steps):
            if after.kind.order < before.kind.order:
                raise ValueError(
                    f"{saga.name}: {after.kind} step {after.name!r} comes after "
                    f"{before.kind} step {before.name!r} (compensatable, pivot, then retriable)"
                )
        pivots = [s.name for s in steps if s.kind is StepKind.PIVOT]
        if len(pivots) > 1:
            raise ValueError(f"{saga.name} has more than one pivot: {', '.join(pivots)}")
        for step in steps:
            if step.kind is StepKind.COMPENSATABLE and step.compensation is None:
                raise ValueError(
                    f"compensatable step {step.name!r} of {saga.name} has no compensation"
                )
            if step.kind is not StepKind.COMPENSATABLE and step.compensation is not None:
                raise ValueError(
                    f"{step.kind} step {step.name!r} of {saga.name} cannot have a compensation"
                )
            if step.kind is StepKind.RETRIABLE and not pivots:
                raise ValueError(
                    f"retriable step {step.name!r} of {saga.name} needs a pivot before it"
                )
        return saga

    def _close(self) -> SagaDefinition:
        if self.action is None:
            raise ValueError(f"step {self.name!r} of {self.saga.name} invokes no command")
        if any(s.name == self.name for s in self.saga.steps):
            raise ValueError(f"{self.saga.name} declares step {self.name!r} twice")
        step = Step(self.name, self.kind, self.action, self.compensation)
        return replace(self.saga, steps=(*self.saga.steps, step))
