"""The web deployable's skeleton: pages in both languages, the language switch, HTML error pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from web.bootstrap import build_api
from web.config import Settings
from web.entrypoints.pages.home import safe_next


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = build_api(Settings(REDIS_URL="redis://127.0.0.1:1/0"))
    with TestClient(app) as test_client:
        yield test_client


def test_home_page_defaults_to_korean(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-language"] == "ko"
    assert '<html lang="ko">' in page.text
    assert "마이크로서비스로 만든 게시판과 Q&A" in page.text


def test_accept_language_picks_english(client: TestClient) -> None:
    page = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9,ko;q=0.5"})
    assert page.headers["content-language"] == "en"
    assert "Boards and Q&A, built as microservices" in page.text


def test_the_switch_remembers_the_language_over_the_header(client: TestClient) -> None:
    switched = client.get("/lang/en?next=%2Fboards%3Fpage%3D2", follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/boards?page=2"
    assert "lang=en" in switched.headers["set-cookie"]
    page = client.get("/", headers={"Accept-Language": "ko"}, cookies={"lang": "en"})
    assert page.headers["content-language"] == "en"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/questions?status=OPEN", "/questions?status=OPEN"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        (None, "/"),
    ],
)
def test_redirect_targets_stay_on_the_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_unknown_page_is_an_html_404_in_the_visitor_language(client: TestClient) -> None:
    page = client.get("/no/such/page", headers={"Accept-Language": "en"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "This page does not exist" in page.text


def test_static_assets_are_served_by_web_itself(client: TestClient) -> None:
    css = client.get("/static/app.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    page = client.get("/")
    assert "http://" not in page.text.replace('xmlns="http://', "")
    assert "https://" not in page.text


def test_a_bug_is_an_html_500_page_and_the_connection_stays_usable() -> None:
    """Kind: an unexpected exception answered as the chassis' problem document (raw JSON in
    the browser); the page must be HTML in the visitor's language, and the next request on
    the same connection must be served."""
    app = build_api(Settings(REDIS_URL="redis://127.0.0.1:1/0"))

    @app.get("/boom")
    async def boom() -> None:
        raise KeyError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/boom", headers={"Accept-Language": "en"})
        assert page.status_code == 500
        assert page.headers["content-type"].startswith("text/html")
        assert "Something went wrong on our side" in page.text
        assert client.get("/").status_code == 200
