"""Observability as documentation: the Grafana breaker panel names each ``gateway_breaker_state`` value as the code does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gateway.breaker import BreakerState

DASHBOARD = (
    Path(__file__).resolve().parents[3]
    / "deploy/observability/grafana/dashboards/http-gateway.json"
)


def breaker_panel() -> dict[str, Any]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (panel,) = [
        p
        for p in dashboard["panels"]
        if any("gateway_breaker_state" in t.get("expr", "") for t in p.get("targets", []))
    ]
    return dict(panel)


def label(state: BreakerState) -> str:
    return state.name.lower().replace("_", "-")


def test_the_value_mappings_follow_breaker_state() -> None:
    (mapping,) = breaker_panel()["fieldConfig"]["defaults"]["mappings"]
    shown = {int(value): option["text"] for value, option in mapping["options"].items()}
    assert shown == {int(state): label(state) for state in BreakerState}


def test_the_description_follows_breaker_state() -> None:
    described = dict(re.findall(r"(\d) ([a-z-]+)", breaker_panel()["description"]))
    assert described == {str(int(state)): label(state) for state in BreakerState}
