"""Edges of the pages a visitor meets by hand or by bad luck: a page past the end of a list, a form the API would refuse opened by URL, a refused write while its service is down, logging out with the session store down, an idle session that ended before its form was sent, a link that names an applied fault."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.web.content_fakes import (
    ADMIN_ID,
    MEMBER_ID,
    OTHER_ID,
    Browser,
    ContentGateway,
    member,
    web_client,
)
from tests.unit.web.fakes import csrf_of_form
from web.sessions import SESSION_COOKIE

FREE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
NOTICE = "abababab-abab-4bab-8bab-abababababab"
POST = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
QID = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
KEY = "0b7e4f7a-6a4e-4c55-9d5e-1f1e5a0c2b11"
WHEN = "2026-11-30T12:00:00Z"
KO = {"Accept-Language": "ko"}


def _question(author: str = MEMBER_ID, status: str = "OPEN") -> dict[str, Any]:
    return {
        "id": QID,
        "title": "Why?",
        "content": "q",
        "bounty": 0,
        "status": status,
        "author": {"id": author, "nickname": "x"},
        "answers": [],
        "comments": [],
        "created_at": WHEN,
    }


@pytest.fixture
def gateway() -> ContentGateway:
    fake = ContentGateway()
    fake.answer(
        "GET",
        "/api/boards",
        [
            {"id": NOTICE, "slug": "notice", "name": "Notices"},
            {"id": FREE, "slug": "free", "name": "Free talk"},
        ],
    )
    fake.answer("GET", f"/api/boards/{FREE}/posts", {"items": [], "total": 120})
    fake.answer("GET", "/api/questions", {"items": [], "total": 120})
    fake.answer(
        "GET",
        f"/api/posts/{POST}",
        {
            "id": POST,
            "board_id": FREE,
            "title": "t",
            "content": "c",
            "created_at": WHEN,
            "author": {"id": OTHER_ID, "nickname": "bob"},
        },
    )
    fake.answer("GET", f"/api/posts/{POST}/comments", {"items": [], "total": 3})
    return fake


# --- a page past the end ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "last"),
    [
        (f"/boards/{FREE}?page=1000000", f"/boards/{FREE}?page=6"),
        ("/questions?page=1000000", "/questions?page=6"),
        (f"/posts/{POST}?cpage=9", f"/posts/{POST}?cpage=1#comments"),
    ],
)
def test_a_page_past_the_end_says_so_and_links_the_last_page(
    gateway: ContentGateway, url: str, last: str
) -> None:
    with web_client(gateway) as browser:
        page = browser.get(url)
        korean = browser.get(url, headers=KO)
    assert page.status_code == 200
    assert "the list has" in page.text
    assert f'href="{last}"' in page.text
    assert "yet" not in page.text  # not "no posts yet": there are 120
    assert " of 6" not in page.text  # nor "page 1000000 of 6"
    assert "목록은" in korean.text


# --- forms the API would refuse, opened by URL --------------------------------------------------


def test_a_member_is_told_the_notice_board_is_for_admins_instead_of_a_form(
    gateway: ContentGateway,
) -> None:
    with web_client(gateway, member(MEMBER_ID)) as browser:
        page = browser.get(f"/boards/{NOTICE}/write")
        korean = browser.get(f"/boards/{NOTICE}/write", headers=KO)
    assert page.status_code == 403
    assert "only an admin may post on the notice board" in page.text
    assert f'action="/boards/{NOTICE}/write"' not in page.text
    assert "공지사항 게시판에는 관리자만" in korean.text
    with web_client(gateway, member(ADMIN_ID, role="ADMIN")) as browser:
        assert browser.get(f"/boards/{NOTICE}/write").status_code == 200


def test_the_edit_form_of_someone_elses_post_says_why_instead(gateway: ContentGateway) -> None:
    with web_client(gateway, member(MEMBER_ID)) as browser:
        page = browser.get(f"/posts/{POST}/edit")
    assert page.status_code == 403
    assert "only the author or an admin may change this post" in page.text
    assert f'action="/posts/{POST}/edit"' not in page.text


@pytest.mark.parametrize(
    ("author", "status", "code", "reason"),
    [
        (OTHER_ID, "OPEN", 403, "only the author or an admin may edit this question"),
        (MEMBER_ID, "RESOLVED", 409, "cannot edit a question that is RESOLVED; only OPEN ones"),
        (MEMBER_ID, "ACCEPTING", 409, "cannot edit a question that is ACCEPTING; only OPEN ones"),
    ],
)
def test_the_edit_form_of_a_question_that_cannot_change_says_why(
    gateway: ContentGateway, author: str, status: str, code: int, reason: str
) -> None:
    gateway.answer("GET", f"/api/questions/{QID}", _question(author, status))
    with web_client(gateway, member(MEMBER_ID)) as browser:
        page = browser.get(f"/questions/{QID}/edit")
    assert page.status_code == code
    assert reason in page.text
    assert f'action="/questions/{QID}/edit"' not in page.text


# --- a refused write while its service is down keeps the text -----------------------------------


@pytest.mark.parametrize(
    ("action", "read"),
    [
        (f"/questions/{QID}/answers", f"/api/questions/{QID}"),
        (f"/questions/{QID}/comments", f"/api/questions/{QID}"),
        (f"/posts/{POST}/comments", f"/api/posts/{POST}"),
    ],
)
def test_with_the_service_down_a_refused_text_is_kept_in_a_form(
    gateway: ContentGateway, action: str, read: str
) -> None:
    gateway.outage("POST", f"/api{action}")
    gateway.outage("GET", read)
    with web_client(gateway, member(MEMBER_ID)) as browser:
        page = browser.post(action, data={"content": "my long <answer>", "idempotency_key": KEY})
    assert page.status_code == 200
    assert "The service is temporarily unavailable" in page.text
    assert "my long &lt;answer&gt;</textarea>" in page.text
    assert f'action="{action}"' in page.text
    assert f'name="idempotency_key" value="{KEY}"' in page.text


# --- logging out with the session store down ----------------------------------------------------


def _records(browser: Browser) -> Any:
    return browser.client.app.state.sessions.records  # type: ignore[attr-defined]


def test_logging_out_with_the_session_store_down_clears_the_cookie_and_says_so(
    gateway: ContentGateway,
) -> None:
    with web_client(gateway, member(MEMBER_ID)) as browser:
        _records(browser).down = True
        out = browser.post("/logout", follow_redirects=False)
        assert out.status_code == 303
        assert out.headers["location"] == "/?notice=logged-out-offline"
        assert f"{SESSION_COOKIE}=" in out.headers["set-cookie"]
        assert "Max-Age=0" in out.headers["set-cookie"]
        home = browser.get(out.headers["location"])
    assert "You are logged out in this browser" in home.text
    assert "2 hours" in home.text  # SESSION_IDLE_SECONDS, 7200
    assert 'action="/logout"' not in home.text


def test_a_cross_site_logout_is_still_refused_with_the_store_down(
    gateway: ContentGateway,
) -> None:
    with web_client(gateway, member(MEMBER_ID)) as browser:
        _records(browser).down = True
        out = browser.post(
            "/logout", headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False
        )
    assert out.status_code == 403


# --- a session that ended while idle ------------------------------------------------------------


def test_a_form_sent_after_the_session_ended_asks_to_log_in_and_comes_back(
    gateway: ContentGateway,
) -> None:
    gateway.answer("GET", f"/api/questions/{QID}", _question())
    with web_client(gateway, member(MEMBER_ID)) as browser:
        _records(browser).clock.advance(3 * 3600)  # past SESSION_IDLE_SECONDS
        sent = browser.post(
            f"/questions/{QID}/answers",
            data={"content": "x"},
            headers={"Referer": f"http://web.test/questions/{QID}"},
            follow_redirects=False,
        )
        assert sent.status_code == 303
        target = sent.headers["location"]
        login = browser.get(target)
    assert target == f"/login?next=%2Fquestions%2F{QID}&notice=ended"
    assert "Your session has ended. Please log in again." in login.text
    assert not gateway.calls_to("POST", f"/api/questions/{QID}/answers")


def test_a_guest_form_sent_after_its_session_ended_is_simply_expired(
    gateway: ContentGateway,
) -> None:
    with web_client(gateway) as browser:
        form = browser.get("/login").text
        _records(browser).clock.advance(3600)  # past ANON_SESSION_SECONDS
        sent = browser.client.post(
            "/login",
            data={"csrf_token": csrf_of_form(form, "/login"), "email": "a@b.c", "password": "x"},
            headers={"Referer": "http://web.test/login"},
            follow_redirects=False,
        )
    assert sent.status_code == 403
    assert "expired" in sent.text


# --- the fault page names only a command it lists -----------------------------------------------


def test_the_fault_page_names_only_a_listed_command(gateway: ContentGateway) -> None:
    gateway.answer(
        "GET",
        "/api/admin/faults",
        {"items": [], "commands": {"qna": ["confirm-acceptance"]}},
    )
    with web_client(gateway, member(ADMIN_ID, role="ADMIN")) as browser:
        known = browser.get("/admin/faults?applied=qna%2Fconfirm-acceptance")
        made_up = browser.get("/admin/faults?applied=Your+account+is+hacked")
    assert "Applied to qna/confirm-acceptance." in known.text
    main = made_up.text.split('<main id="main"', 1)[1]
    assert "hacked" not in main
    assert not re.search(r"Applied to", main)
