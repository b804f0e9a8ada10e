"""Property-based API testing: the short Schemathesis run of ``make test`` against each
service's OpenAPI and the gateway's (the long one is ``make fuzz``).

Per target ``FUZZ_CASES`` generated requests (default 100, valid and invalid inputs, a token on
most of them), a fixed seed (``FUZZ_SEED``) and a wall-clock cap; every answer must not be a
5xx and must match its document (status code, body, content type).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.system.fuzz.harness import Report, fuzz
from tests.system.fuzz.targets import fuzz_targets, fuzz_tokens
from tests.system.saga.stack import Stack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

TARGETS = ("member", "board", "qna", "saga", "gateway")
CASES = int(os.environ.get("FUZZ_CASES", "100"))
SEED = int(os.environ.get("FUZZ_SEED", "12"))
MAX_SECONDS = float(os.environ.get("FUZZ_MAX_SECONDS", "90"))

#: Targets whose answers do not match their document on today's code: every 422 (and every
#: other problem) is sent as application/problem+json while the documents, as FastAPI writes
#: them, promise application/json. Issue 12 part 1 documents the problem responses in the
#: chassis; strict, so the fix turns these into failures until the names leave this list.
PROBLEM_RESPONSES_UNDOCUMENTED: set[str] = set()

#: Targets where a generated request gets a 5xx on today's code: member answers 500 to a login
#: whose email holds a NUL byte or a lone surrogate (PostgreSQL refuses the text), e.g.
#: ``POST /api/auth/login {"email": "a\u0000@x.io", "password": "12345678"}``. Issue 12
#: part 1 refuses such input with 422 in the chassis; strict, so the fix must empty this set.
SERVER_ERRORS_ON_BAD_TEXT: set[str] = set()

_reports: dict[str, Report] = {}


class ServerErrorFound(AssertionError):
    """A generated request got a 5xx (the only failure the xfail marks below accept)."""


class SchemaViolation(AssertionError):
    """An answer that does not match its document (what the xfail marks expect, and only that:
    a stack that did not start is an error, never an expected failure)."""


@pytest.fixture(scope="module")
async def reports(gateway_stack: Stack) -> dict[str, Report]:
    """One fuzzing run per target, shared by the checks below."""
    if not _reports:
        tokens = await fuzz_tokens(gateway_stack)
        for target in await fuzz_targets(gateway_stack, tokens):
            _reports[target.name] = await asyncio.to_thread(
                fuzz, target, cases=CASES, seed_value=SEED, max_seconds=MAX_SECONDS
            )
            print(_reports[target.name].line())
    return _reports


def _findings(report: Report, checks: tuple[str, ...]) -> list[str]:
    return [
        f"[{f.check}] {f.operation} -> {f.status}: {f.message}\n    {f.reproduce}"
        for f in report.findings.values()
        if f.check in checks
    ]


def _server_error_case(target: str) -> object:
    marks = []
    if target in SERVER_ERRORS_ON_BAD_TEXT:
        marks.append(
            pytest.mark.xfail(
                strict=True,
                raises=ServerErrorFound,
                reason="issue 12 part 1: NUL and lone surrogates reach PostgreSQL (500)",
            )
        )
    return pytest.param(target, marks=marks)


@pytest.mark.parametrize("target", [_server_error_case(t) for t in TARGETS])
def test_no_server_error(reports: dict[str, Report], target: str) -> None:
    """No generated request, valid or not, gets a 5xx (or no answer within the bound)."""
    report = reports[target]
    assert report.cases >= min(CASES, 50), report.line()
    if report.server_errors:
        raise ServerErrorFound("\n".join(_findings(report, ("not_a_server_error", "timeout"))))


def _schema_case(target: str) -> object:
    marks = []
    if target in PROBLEM_RESPONSES_UNDOCUMENTED:
        marks.append(
            pytest.mark.xfail(
                strict=True,
                raises=SchemaViolation,
                reason="issue 12 part 1: problem responses are not in the OpenAPI documents",
            )
        )
    return pytest.param(target, marks=marks)


@pytest.mark.parametrize("target", [_schema_case(t) for t in TARGETS])
def test_answers_match_the_document(reports: dict[str, Report], target: str) -> None:
    """Every answer's status is in its document, and its body and content type are the ones the
    document gives for that status."""
    report = reports[target]
    if report.violations:
        raise SchemaViolation(
            "\n".join(
                _findings(
                    report,
                    (
                        "response_schema_conformance",
                        "content_type_conformance",
                        "status_code_conformance",
                    ),
                )
            )
        )
