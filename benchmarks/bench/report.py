"""The harness's output: figures beside baselines and goals, as a markdown table or JSON."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Goal:
    """``value op threshold`` on the figure's ``measured`` value or its ``ratio`` to the baseline."""

    op: str  # "<=" or ">="
    threshold: float
    on: str = "measured"  # or "ratio"

    def __post_init__(self) -> None:
        if self.op not in _OPS or self.on not in ("measured", "ratio"):
            raise ValueError(f"bad goal {self.on} {self.op} {self.threshold}")

    def met(self, measured: float | None, ratio: float | None) -> bool | None:
        """True/False, or None when the value it needs was not measured."""
        value = ratio if self.on == "ratio" else measured
        if value is None or math.isnan(value):
            return None
        return _OPS[self.op](value, self.threshold)

    def describe(self, unit: str) -> str:
        if self.on == "ratio":
            return f"ratio {self.op} {self.threshold:g}"
        return f"{self.op} {self.threshold:g} {unit}".strip()


@dataclass(frozen=True)
class Figure:
    """One row of the table. ``ratio`` is ``measured ÷ baseline`` unless given (a throughput ratio
    beside a latency, as P1 reports); ``goal`` None is an informative row."""

    key: str  # "P1", "P2b" ...
    name: str
    measured: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    goal: Goal | None = None
    note: str = ""

    def resolved_ratio(self) -> float | None:
        if self.ratio is not None:
            return self.ratio
        return ratio(self.measured, self.baseline)

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.measured, self.resolved_ratio())


def ratio(measured: float | None, baseline: float | None) -> float | None:
    """``measured ÷ baseline``; None when either is missing or the baseline is 0."""
    if measured is None or baseline is None or baseline == 0:
        return None
    return measured / baseline


def format_value(value: float | None, unit: str) -> str:
    """A figure with its unit, three significant digits at most (``1.23 ms``, ``6,682 req/s``)."""
    if value is None or math.isnan(value):
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met_cell(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "—"}[met]


def render_table(figures: Sequence[Figure]) -> str:
    """The markdown table: figure | measured | baseline | ratio | goal | met."""
    lines = [
        "| figure | measured | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        baseline = format_value(f.baseline, f.unit) if f.baseline is not None else "—"
        if f.baseline_name and f.baseline is not None:
            baseline = f"{baseline} ({f.baseline_name})"
        r = f.resolved_ratio()
        name = f"{f.key} {f.name}" + (f" ({f.note})" if f.note else "")
        lines.append(
            f"| {name} | {format_value(f.measured, f.unit)} | {baseline} | "
            f"{'—' if r is None else f'{r:.2f}'} | "
            f"{f.goal.describe(f.unit) if f.goal else '—'} | {_met_cell(f.met)} |"
        )
    return "\n".join(lines)


def render_header(machine: dict[str, Any]) -> str:
    """The machine and the run, one ``- key: value`` line each."""
    return "\n".join(f"- {key}: {value}" for key, value in machine.items())


def as_json(machine: dict[str, Any], figures: Sequence[Figure]) -> dict[str, Any]:
    """What ``--json`` writes: the header and every row with its ratio and verdict."""
    rows = []
    for f in figures:
        row = asdict(f)
        row["goal"] = None if f.goal is None else f.goal.describe(f.unit)
        row["ratio"] = f.resolved_ratio()
        row["met"] = f.met
        rows.append(row)
    return {"machine": machine, "figures": rows}


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0-100) of a non-empty sample; NaN for an empty one."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]
