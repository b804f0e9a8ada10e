"""Alerting rules as tested code: promtool checks deploy/observability/alerts.yml and runs its unit tests.

``promtool`` comes with Debian's ``prometheus`` package, which ``make test`` installs
(``make observe-tools``); without it these tests skip and say so. Besides promtool's own checks:
every alert carries a summary, a description, a severity and a runbook that resolves to its
section of docs/observability.md; every alert has a unit test where it fires and one where it
must not; every PromQL query the page shows is evaluated in deploy/observability/queries.test.yml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.infra import REPO

OBSERVABILITY = REPO / "deploy" / "observability"
RULES = OBSERVABILITY / "alerts.yml"
RULE_TESTS = OBSERVABILITY / "alerts.test.yml"
QUERY_TESTS = OBSERVABILITY / "queries.test.yml"
DOC = REPO / "docs" / "observability.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian package prometheus: `make observe-tools`)",
)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerts() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_the_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("tests", [RULE_TESTS, QUERY_TESTS], ids=lambda p: p.name)
def test_promtool_unit_tests_pass(tests: Path) -> None:
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in load(RULE_TESTS)["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts with no test in which they fire"
    assert names - quiet == set(), "alerts with no test in which they stay quiet"


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_says_what_how_bad_and_where_its_runbook_is() -> None:
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in alerts():
        name, annotations = rule["alert"], rule.get("annotations", {})
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, name
        assert annotations.get("summary"), name
        assert annotations.get("description"), name
        assert annotations.get("runbook") == f"docs/observability.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/observability.md has no section {name}"


def test_every_query_the_docs_show_is_evaluated_by_promtool() -> None:
    """A ```promql block of docs/observability.md holds one query per line."""
    text = DOC.read_text(encoding="utf-8")
    shown = {
        line.strip()
        for block in re.findall(r"```promql\n(.*?)```", text, flags=re.DOTALL)
        for line in block.splitlines()
        if line.strip()
    }
    tested = {
        case["expr"].strip()
        for group in load(QUERY_TESTS)["tests"]
        for case in group.get("promql_expr_test", [])
    }
    assert shown, "docs/observability.md shows no ```promql block"
    assert shown - tested == set(), "queries in the docs that queries.test.yml does not evaluate"


#: Series Prometheus makes itself, not the applications.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {
    "sum", "max", "min", "by", "and", "or", "unless", "offset", "increase", "deriv",
    "min_over_time", "humanize",
}  # fmt: skip


def test_every_metric_an_alert_reads_is_exported_by_the_code() -> None:
    """An alert on a metric nobody exports never fires: each name must be declared in a
    Counter/Gauge/Histogram under libs, services, saga, gateway or web."""
    sources = "".join(
        path.read_text(encoding="utf-8")
        for folder in ("libs", "services", "saga", "gateway", "web")
        for path in (REPO / folder).rglob("*.py")
        if "/tests/" not in str(path)
    )
    for rule in alerts():
        expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", rule["expr"])
        expr = re.sub(r"\b(by|without)\s*\([^)]*\)|\b\d+[smh]?\b", "", expr)
        names = set(re.findall(r"[a-z_][a-z0-9_]*", expr)) - PROMQL_WORDS
        assert names, rule["alert"]
        for name in names - PROMETHEUS_SERIES:
            assert f'"{name}"' in sources, f"{rule['alert']}: no code exports {name}"


def test_the_kubernetes_copy_of_the_rules_is_the_source() -> None:
    """kustomize reads no file outside its folder: deploy/k8s/components/alert-rules keeps a copy."""
    copy = REPO / "deploy" / "k8s" / "components" / "alert-rules" / "alerts.yml"
    assert copy.read_bytes() == RULES.read_bytes(), (
        "stale copy: cp deploy/observability/alerts.yml deploy/k8s/components/alert-rules/"
    )
