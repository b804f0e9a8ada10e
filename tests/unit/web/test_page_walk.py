"""Every page a member or an admin can open, walked through the app's own routes: each form's synchronizer token (CSRF) is the session's, and every answer carries the anti-framing headers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

import web
from tests.unit.web.content_fakes import (
    ADMIN_ID,
    MEMBER_ID,
    Account,
    Browser,
    ContentGateway,
    member,
    web_client,
)
from web.entrypoints.pages import account, admin, auth, boards, home, mypage, questions, sagas
from web.sessions import SESSION_COOKIE, session_key

PAGE_MODULES = (account, admin, auth, boards, home, mypage, questions, sagas)

BOARD = "44444444-4444-4444-8444-444444444444"
POST = "55555555-5555-4555-8555-555555555555"
QUESTION = "66666666-6666-4666-8666-666666666666"
SAGA = "77777777-7777-4777-8777-777777777777"
IDS = {"board_id": BOARD, "post_id": POST, "question_id": QUESTION, "saga_id": SAGA, "code": "en"}
#: Not pages: no form is rendered there.
SKIPPED = ("/static", "/healthz", "/readyz", "/metrics", "/lang/")
#: Answers other than 200 on the walk: a member is sent on from the guests' forms, and only
#: an admin opens the fault page.
EXPECTED = {
    ("/login", "MEMBER"): 303,
    ("/signup", "MEMBER"): 303,
    ("/login", "ADMIN"): 303,
    ("/signup", "ADMIN"): 303,
    ("/admin/faults", "MEMBER"): 403,
}
CSRF_FIELD = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
VALUE = re.compile(r'value="([^"]*)"')


def _world(account: Account) -> ContentGateway:
    gateway = ContentGateway()
    author = {"id": account.id, "nickname": account.nickname}
    gateway.answer("GET", "/api/boards", [{"id": BOARD, "name": "Free", "slug": "free"}])
    post = {
        "id": POST,
        "board_id": BOARD,
        "title": "Hello",
        "content": "text",
        "author": author,
        "view_count": 1,
        "created_at": "2026-11-30T00:00:00Z",
        "updated_at": "2026-11-30T00:00:00Z",
    }
    gateway.answer("GET", f"/api/boards/{BOARD}/posts", {"items": [post], "total": 1})
    gateway.answer("GET", f"/api/posts/{POST}", post)
    comment = {"id": SAGA, "content": "c", "author": author, "created_at": "2026-11-30T00:00:00Z"}
    gateway.answer("GET", f"/api/posts/{POST}/comments", {"items": [comment], "total": 1})
    other = {"id": "99999999-9999-4999-8999-999999999999", "nickname": "bob"}
    question = {
        "id": QUESTION,
        "title": "Why?",
        "content": "q",
        "bounty": 10,
        "status": "OPEN",
        "author": author,
        "answers": [
            {
                "id": POST,
                "content": "a",
                "author": other,
                "accepted": False,
                "created_at": "2026-11-30T00:00:00Z",
            }
        ],
        "comments": [comment],
        "created_at": "2026-11-30T00:00:00Z",
        "updated_at": "2026-11-30T00:00:00Z",
    }
    gateway.answer("GET", "/api/questions", {"items": [question], "total": 1})
    gateway.answer("GET", f"/api/questions/{QUESTION}", question)
    gateway.answer("GET", "/api/me/dashboard", {"degraded": []})
    gateway.answer(
        "GET",
        "/api/admin/faults",
        {"items": [], "commands": {"member": ["transfer-points"], "qna": ["confirm-acceptance"]}},
    )
    gateway.answer(
        "GET",
        f"/api/sagas/{SAGA}",
        {"id": SAGA, "type": "answer-acceptance", "status": "RUNNING", "steps": []},
    )
    return gateway


def _page_paths() -> list[str]:
    # the routers bootstrap includes (the app's own route list nests them as included routers)
    routes = [r for module in PAGE_MODULES for r in module.router.routes]
    paths = []
    for route in routes:
        if not isinstance(route, APIRoute) or "GET" not in (route.methods or ()):
            continue
        if route.path.startswith(SKIPPED):
            continue
        paths.append(re.sub(r"\{(\w+)\}", lambda m: IDS[m.group(1)], route.path))
    return sorted(paths)


PAGES = _page_paths()


def _session_csrf(browser: Browser) -> str:
    records: Any = browser.client.app.state.sessions.records  # type: ignore[attr-defined]
    found: dict[str, str] = records.data[session_key(browser.client.cookies[SESSION_COOKIE])]
    return found["csrf"]


@pytest.mark.parametrize(
    "account", [member(MEMBER_ID), member(ADMIN_ID, role="ADMIN")], ids=["member", "admin"]
)
def test_every_form_on_every_page_carries_the_sessions_csrf_token(account: Account) -> None:
    gateway = _world(account)
    with web_client(gateway, account) as browser:
        csrf = _session_csrf(browser)
        assert csrf
        walked = 0
        for path in PAGES:
            page = browser.get(path, follow_redirects=False)
            expected = EXPECTED.get((path, account.role), 200)
            assert page.status_code == expected, (path, page.status_code)
            fields = CSRF_FIELD.findall(page.text)
            for found in fields:
                value = VALUE.search(found)
                assert value is not None, (path, found)
                assert value.group(1) == csrf, (path, found)
            walked += len(fields)
    assert len(PAGES) >= 15
    assert walked > len(PAGES)  # forms beyond the log-out button were checked


def test_every_template_imports_its_macros_with_the_context() -> None:
    """A macro imported without the context renders ``csrf_token`` (and every other page value)
    as empty: the form is refused as expired however often it is sent."""
    templates = Path(web.__file__).parent / "templates"
    imports = re.compile(r"{%-?\s*(?:from|import)\s[^%]*%}")
    for template in sorted(templates.glob("*.html")):
        for statement in imports.findall(template.read_text(encoding="utf-8")):
            assert "with context" in statement, (template.name, statement)
