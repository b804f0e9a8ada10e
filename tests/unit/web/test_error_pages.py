"""web's own refusals (the chassis' input guard and method layer) reach the browser as HTML pages in the visitor's language, and every answer carries the anti-framing and content-security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import web
from tests.unit.web.fakes import World, csrf_of, log_in
from web.entrypoints.security_headers import CONTENT_SECURITY_POLICY

KO = {"Accept-Language": "ko"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, base_url="http://web.test", headers=KO) as test_client:
        yield test_client


def _is_korean_page(answer: httpx.Response) -> None:
    assert answer.headers["content-type"].startswith("text/html"), answer.headers["content-type"]
    assert answer.headers["content-language"] == "ko"
    assert '<html lang="ko">' in answer.text


@pytest.mark.parametrize(
    "url",
    ["/questions?q=%00", "/questions?q=%ED%A0%80", "/boards/x?q=%00", "/?q=a%00b"],
    ids=["nul", "lone-surrogate", "board-search", "home"],
)
def test_a_query_the_input_guard_refuses_is_an_html_page(client: TestClient, url: str) -> None:
    answer = client.get(url)
    assert answer.status_code == 422
    _is_korean_page(answer)
    assert "사용할 수 없는 문자" in answer.text


def test_a_form_with_a_nul_is_an_html_page(client: TestClient, world: World) -> None:
    log_in(client)
    token = csrf_of(client.get("/questions/ask").text)
    answer = client.post(
        "/questions/ask", data={"csrf_token": token, "title": "a\x00b", "content": "x"}
    )
    assert answer.status_code == 422
    _is_korean_page(answer)
    assert not world.gateway.called("POST /api/questions")


def test_a_body_too_large_is_an_html_page(client: TestClient) -> None:
    answer = client.post("/login", content=b"email=" + b"x" * (2 << 20), headers=FORM)
    assert answer.status_code == 413
    _is_korean_page(answer)


@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE", "PATCH"])
def test_a_method_the_page_does_not_allow_is_an_html_405_with_allow(
    client: TestClient, method: str
) -> None:
    answer = client.request(method, "/questions")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, OPTIONS"
    _is_korean_page(answer)


def test_an_unknown_method_is_an_html_501(client: TestClient) -> None:
    answer = client.request("BREW", "/")
    assert answer.status_code == 501
    _is_korean_page(answer)


def test_a_head_refused_has_no_body(client: TestClient) -> None:
    answer = client.head("/questions?q=%00")
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.content == b""


@pytest.mark.parametrize("path", ["/healthz?q=%00", "/metrics?q=%00"])
def test_probes_and_metrics_keep_their_own_answers(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"


SECURITY = {
    "x-frame-options": "DENY",
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/login"),
        ("GET", "/account/withdraw"),
        ("GET", "/no-such-page"),
        ("GET", "/questions?q=%00"),
        ("TRACE", "/"),
        ("GET", "/static/app.css"),
        ("GET", "/healthz"),
    ],
)
def test_every_answer_forbids_framing_and_foreign_scripts(
    client: TestClient, method: str, path: str
) -> None:
    answer = client.request(method, path, follow_redirects=False)
    for name, value in SECURITY.items():
        assert answer.headers.get(name) == value, (path, name)


def test_the_policy_forbids_every_framing_origin() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"


def test_no_template_needs_what_the_policy_blocks() -> None:
    """``script-src 'self'`` and ``style-src 'self'`` block inline scripts, event handler
    attributes and ``style`` attributes: a template that used one would break silently."""
    templates = Path(web.__file__).parent / "templates"
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=", re.I)
    style_attribute = re.compile(r"\sstyle\s*=", re.I)
    for template in sorted(templates.glob("*.html")):
        text = template.read_text(encoding="utf-8")
        for pattern in (inline_script, handler, style_attribute):
            assert not pattern.search(text), (template.name, pattern.pattern)
        assert "<style" not in text.lower(), template.name
