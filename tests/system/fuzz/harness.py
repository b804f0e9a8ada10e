"""Property-based API fuzzing (Schemathesis over Hypothesis): generated requests against a live
OpenAPI contract, bounded in count and time, every answer checked against the document.

The harness fuzzes one *target* (a service's api, or the gateway with the documents it serves)
over loopback only and collects what the checks report instead of stopping at the first
failure, so one run gives the figures of every operation: cases sent, 5xx answers, schema
violations (status, body, content type) and the distinct findings with a request to reproduce
each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.infra import REPO

#: Schemathesis' operation and case types, with their type parameters left open.
Operation = APIOperation[Any, Any, Any, Any]
GeneratedCase = schemathesis.Case[Any]

#: Hypothesis keeps its home (example database, caches) under the gitignored .local/.
HYPOTHESIS_HOME = REPO / ".local" / "hypothesis"
set_hypothesis_home_dir(HYPOTHESIS_HOME)

#: The checks every answer goes through, by the name a finding is reported under.
CHECKS: dict[str, Any] = {
    "not_a_server_error": not_a_server_error,
    "response_schema_conformance": response_schema_conformance,
    "content_type_conformance": content_type_conformance,
    "status_code_conformance": status_code_conformance,
}
#: Checks whose findings count as schema violations (the 5xx check is counted apart). An answer
#: whose status its document does not list is one too: every service documents its problem
#: responses (``chassis.openapi``), so a client can rely on the statuses it reads there.
VIOLATIONS = ("response_schema_conformance", "content_type_conformance", "status_code_conformance")
#: One request's bound: a case slower than this is a finding of its own (``timeout``).
REQUEST_TIMEOUT = 30.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Cases per round: the short run of ``make test`` is one round, ``make fuzz`` ten.
ROUND = 100


#: Characters a store or a hash cannot take, or that read the same as something else: NUL
#: (PostgreSQL text), a lone surrogate (UTF-8), and Hangul typed as decomposed jamo (NFD).
HOSTILE = ("\x00", "\ud800", "\u1100\u1161")


def _hostile_emails() -> st.SearchStrategy[str]:
    """Valid emails, and emails with a hostile character inside: the format keeps the default
    generator away from exactly the text an email column or a lookup must refuse."""
    emails = st.emails()
    spiked = st.tuples(emails, st.sampled_from(HOSTILE), st.integers(0, 64)).map(
        lambda parts: parts[0][: parts[2]] + parts[1] + parts[0][parts[2] :]
    )
    return st.one_of(emails, spiked)


schemathesis.openapi.format("email", _hostile_emails())


class OutOfTime(Exception):
    """Raised inside a Hypothesis run when the target's wall-clock cap has passed."""


@dataclass(frozen=True)
class Finding:
    """One distinct failure: the check, the operation, the answer's status and a curl command
    that reproduces it (the first case that showed it)."""

    check: str
    operation: str
    status: int
    message: str
    reproduce: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.check, self.operation, self.status)


@dataclass
class Report:
    """The figures of one target's run."""

    target: str
    cases: int = 0
    server_errors: int = 0  # answers with a 5xx status
    violations: int = 0  # answers failing a VIOLATIONS check (counted once per answer)
    undocumented: int = 0  # answers whose status the document does not list
    seconds: float = 0.0
    out_of_time: bool = False
    findings: dict[tuple[str, str, int], Finding] = field(default_factory=dict)
    by_operation: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """One summary line, e.g. ``board: 1000 cases, 0 5xx, 3 schema violations, 41.2 s``."""
        capped = " (wall-clock cap reached)" if self.out_of_time else ""
        return (
            f"{self.target}: {self.cases} cases, {self.server_errors} 5xx, "
            f"{self.violations} schema violations ({self.undocumented} undocumented status), "
            f"{self.seconds:.1f} s{capped}"
        )


#: Picks the Authorization header for a case: (operation, case index) -> token or None.
TokenChooser = Callable[[Operation, int], str | None]


@dataclass(frozen=True)
class Target:
    """What to fuzz: OpenAPI documents (already fetched) and the base URL that serves them."""

    name: str
    base_url: str
    documents: list[dict[str, Any]]
    token_for: TokenChooser
    skip: Callable[[Operation], bool] = lambda _operation: False


def _operations(target: Target) -> list[Operation]:
    operations: list[Operation] = []
    for document in target.documents:
        schema = schemathesis.openapi.from_dict(document)
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()  # a document the fuzzer cannot read is a broken contract
            operation = result.ok()
            if not target.skip(operation):
                operations.append(operation)
    return operations


def fuzz(target: Target, *, cases: int, seed_value: int, max_seconds: float) -> Report:
    """Send about ``cases`` generated requests to ``target`` (spread over its operations, valid
    and invalid inputs mixed) within ``max_seconds``; the same ``seed_value`` generates the same
    requests. Raises ValueError for a base URL outside loopback."""
    host = urlsplit(target.base_url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"fuzzing is for loopback addresses only, not {target.base_url}")
    report = Report(target.name)
    operations = _operations(target)
    deadline = time.monotonic() + max_seconds
    started = time.monotonic()
    database = DirectoryBasedExampleDatabase(HYPOTHESIS_HOME / "examples")
    session = requests.Session()
    try:
        # Rounds of ROUND cases, each with its own seed: a long run starts with exactly the
        # cases of a short one (same seed), then goes on. Within a round, operations without
        # inputs exhaust after a case or two; their budget flows on to the next ones, and
        # top-up passes (each with its own seed) complete the round.
        for round_index in range(math.ceil(cases / ROUND)):
            goal = min(cases, (round_index + 1) * ROUND)
            for attempt in range(4):
                if report.cases >= goal or report.out_of_time:
                    break
                for index, operation in enumerate(operations):
                    budget = math.ceil((goal - report.cases) / (len(operations) - index))
                    if budget <= 0:
                        break
                    _fuzz_operation(
                        target,
                        operation,
                        report,
                        session,
                        budget=budget,
                        seed_value=seed_value + 1000 * round_index + attempt,
                        deadline=deadline,
                        database=database,
                    )
                    if report.out_of_time:
                        break
    finally:
        session.close()
        report.seconds = time.monotonic() - started
    return report


def _fuzz_operation(
    target: Target,
    operation: Operation,
    report: Report,
    session: requests.Session,
    *,
    budget: int,
    seed_value: int,
    deadline: float,
    database: DirectoryBasedExampleDatabase,
) -> None:
    label = f"{target.name} {operation.label}"
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    # Findings are collected, never raised: one run measures everything, and shrinking (which
    # would resend requests) is off.
    @seed(seed_value)
    @settings(
        max_examples=budget,
        deadline=None,
        database=database,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def run(case: GeneratedCase) -> None:
        if time.monotonic() > deadline:
            raise OutOfTime
        index = report.by_operation.get(label, 0)
        report.by_operation[label] = index + 1
        report.cases += 1
        token = target.token_for(operation, index)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = case.call(
                base_url=target.base_url, session=session, headers=headers, timeout=REQUEST_TIMEOUT
            )
        except requests.RequestException as exc:
            _record(report, "timeout", label, 0, str(exc), case, headers)
            report.server_errors += 1
            return
        if response.status_code >= 500:
            report.server_errors += 1
        violated = False
        for name, check in CHECKS.items():
            try:
                case.validate_response(response, checks=[check], headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    _record(report, name, label, response.status_code, failure, case, headers)
                if name in VIOLATIONS:
                    violated = True
                if name == "status_code_conformance":
                    report.undocumented += 1
            except Failure as failure:
                _record(report, name, label, response.status_code, failure, case, headers)
                violated = violated or name in VIOLATIONS
                if name == "status_code_conformance":
                    report.undocumented += 1
        if violated:
            report.violations += 1

    try:
        run()
    except OutOfTime:
        report.out_of_time = True


def _record(
    report: Report,
    check: str,
    operation: str,
    status: int,
    failure: object,
    case: GeneratedCase,
    headers: dict[str, str],
) -> None:
    key = (check, operation, status)
    if key in report.findings:
        return
    message = getattr(failure, "title", None) or str(failure)
    detail = getattr(failure, "message", "")
    if detail:
        message = f"{message}: {detail}"
    shown = {k: ("Bearer <token>" if k == "Authorization" else v) for k, v in headers.items()}
    try:
        reproduce = case.as_curl_command(headers=shown)
    except Exception as exc:  # a curl line is a convenience; the finding stands without it
        reproduce = f"(no curl command: {exc})"
    report.findings[key] = Finding(check, operation, status, message.strip()[:600], reproduce)
