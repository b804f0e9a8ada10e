"""Q&A screens over a fake gateway (our own port): the list's status filter, paging and search, buttons only where qna would allow them, the acceptance hand-over to the saga view, errors on the form they came from."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from tests.unit.web.content_fakes import (
    ADMIN_ID,
    MEMBER_ID,
    OTHER_ID,
    ContentGateway,
    hidden_field,
    main_of,
    member,
    web_client,
)

QID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
NEW_Q = "a0a0a0a0-a0a0-40a0-80a0-a0a0a0a0a0a0"
BOBS = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"  # bob's answer
OWN = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"  # alice's answer to her own question
COMMENT = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
SAGA = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
KEY = "0b7e4f7a-6a4e-4c55-9d5e-1f1e5a0c2b11"
WHEN = "2026-11-30T12:00:00Z"
ALICE = {"id": MEMBER_ID, "nickname": "alice"}
BOB = {"id": OTHER_ID, "nickname": "bob"}


def _question(status: str = "OPEN", *, accepted: str | None = None) -> dict[str, Any]:
    return {
        "id": QID,
        "title": "How do sagas compensate?",
        "content": "In <order>?",
        "author": ALICE,
        "bounty": 50,
        "status": status,
        "answer_count": 2,
        "accepted_answer_id": accepted,
        "created_at": WHEN,
        "answers": [
            {
                "id": BOBS,
                "author": BOB,
                "content": "in reverse",
                "accepted": accepted == BOBS,
                "created_at": WHEN,
            },
            {
                "id": OWN,
                "author": ALICE,
                "content": "my own",
                "accepted": False,
                "created_at": WHEN,
            },
        ],
        "comments": [{"id": COMMENT, "author": BOB, "content": "good one", "created_at": WHEN}],
    }


def _summary(qid: str = QID, status: str = "OPEN") -> dict[str, Any]:
    full = _question(status)
    summary = {k: v for k, v in full.items() if k not in ("content", "answers", "comments")}
    return {**summary, "id": qid}


@pytest.fixture
def gateway() -> ContentGateway:
    fake = ContentGateway()
    fake.answer(
        "GET", "/api/questions", {"items": [_summary()], "total": 41, "page": 1, "size": 20}
    )
    fake.answer("GET", f"/api/questions/{QID}", _question())
    return fake


# --- the list -----------------------------------------------------------------------------------


def test_status_paging_and_search_go_to_the_api_as_given(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get(
            "/questions", params={"status": "RESOLVED", "page": 3, "size": 5, "q": "saga"}
        )
    assert page.status_code == 200
    (call,) = gateway.calls_to("GET", "/api/questions")
    assert call.params == {"status": "RESOLVED", "page": 3, "size": 5, "q": "saga"}
    assert '<option value="RESOLVED" selected>' in page.text
    assert (
        'href="/questions?status=RESOLVED&amp;size=5&amp;q=saga&amp;page=4" rel="next"' in page.text
    )


def test_an_unknown_status_means_every_status(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get("/questions", params={"status": "DRAFT"})
    assert page.status_code == 200
    (call,) = gateway.calls_to("GET", "/api/questions")
    assert call.params == {"page": 1, "size": 20}


def test_the_list_shows_status_bounty_and_answers(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        english = client.get("/questions")
        korean = client.get("/questions", headers={"Accept-Language": "ko"})
    row = re.search(rf'<tr>\s*<td><a href="/questions/{QID}">.*?</tr>', english.text, re.S)
    assert row is not None
    assert "Open" in row.group(0)
    assert "<td>50</td>" in row.group(0)
    assert "<td>2</td>" in row.group(0)
    assert "열림" in korean.text


@pytest.mark.parametrize("failure", ["outage", "unreachable"])
def test_a_qna_outage_is_a_200_page_that_says_so(gateway: ContentGateway, failure: str) -> None:
    getattr(gateway, failure)("GET", "/api/questions")
    getattr(gateway, failure)("GET", f"/api/questions/{QID}")
    with web_client(gateway, member()) as client:
        listing = client.get("/questions")
        detail = client.get(f"/questions/{QID}")
    assert listing.status_code == 200
    assert detail.status_code == 200
    assert "This list is temporarily unavailable" in listing.text
    assert "Ask a question" in listing.text  # the rest of the page works
    assert "The service is temporarily unavailable" in detail.text


def test_a_new_question_waits_on_the_lists_it_belongs_to(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        everything = client.get("/questions", params={"created": NEW_Q})
        open_only = client.get("/questions", params={"created": NEW_Q, "status": "OPEN"})
        resolved = client.get("/questions", params={"created": NEW_Q, "status": "RESOLVED"})
        listed = client.get("/questions", params={"created": QID})
    assert "Your new question is being published" in everything.text
    with web_client(gateway, member()) as client:
        korean = client.get(
            "/questions", params={"created": NEW_Q}, headers={"Accept-Language": "ko"}
        )
    assert "새 질문을 게시하는 중" in korean.text
    assert f'data-poll-url="/questions?created={NEW_Q}&amp;fragment=1"' in everything.text
    assert "being published" in open_only.text
    assert "being published" not in resolved.text  # a new question is OPEN
    assert "being published" not in listed.text


def test_the_list_alone_for_the_poll(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        fragment = client.get("/questions", params={"created": NEW_Q, "fragment": 1, "poll": 4})
    assert fragment.text.lstrip().startswith('<div id="question-list"')
    assert "&amp;fragment=1" in fragment.text
    assert "<html" not in fragment.text


def test_a_deleted_question_is_left_out(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get("/questions", params={"deleted": QID})
    assert f'href="/questions/{QID}"' not in page.text


# --- ask ----------------------------------------------------------------------------------------


def test_asking_sends_the_bounty_as_a_number_once_per_form(gateway: ContentGateway) -> None:
    gateway.answer("POST", "/api/questions", {**_question(), "id": NEW_Q}, status=201)
    with web_client(gateway, member()) as client:
        form_page = client.get("/questions/ask")
        key = hidden_field(form_page.text, "idempotency_key")
        form = {
            "idempotency_key": key,
            "title": "T",
            "content": "C",
            "bounty": "30",
        }
        first = client.post("/questions/ask", data=form, follow_redirects=False)
        again = client.post("/questions/ask", data=form, follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == f"/questions/{NEW_Q}?created=1"
    assert again.headers["location"] == first.headers["location"]
    calls = gateway.calls_to("POST", "/api/questions")
    assert calls[0].json == {"title": "T", "content": "C", "bounty": 30}
    assert [c.idempotency_key for c in calls] == [key, key]


def test_a_bad_bounty_is_the_apis_422_on_the_bounty_field(gateway: ContentGateway) -> None:
    gateway.refuse(
        "POST",
        "/api/questions",
        422,
        detail="the request is not valid",
        errors=[
            {
                "loc": ["body", "bounty"],
                "msg": "Input should be a valid integer",
                "type": "int_type",
            }
        ],
    )
    form = {
        "idempotency_key": KEY,
        "title": "T",
        "content": "C",
        "bounty": "lots",
    }
    with web_client(gateway, member()) as client:
        english = client.post("/questions/ask", data=form)
        korean = client.post("/questions/ask", data=form, headers={"Accept-Language": "ko"})
    assert english.status_code == 422
    (call, _) = gateway.calls_to("POST", "/api/questions")
    assert call.json["bounty"] == "lots"  # as typed: the API names the field
    assert '<p class="error" id="e-bounty">Enter a whole number.</p>' in english.text
    assert 'value="lots"' in english.text
    assert 'value="T"' in english.text
    assert "정수를 입력하세요." in korean.text


def test_a_bounty_out_of_range_reads_on_its_field(gateway: ContentGateway) -> None:
    gateway.refuse(
        "POST",
        "/api/questions",
        422,
        errors=[
            {
                "loc": ["body", "bounty"],
                "msg": "Input should be less than or equal to 1000",
                "type": "less_than_equal",
            }
        ],
    )
    form = {
        "idempotency_key": KEY,
        "title": "T",
        "content": "C",
        "bounty": "5000",
    }
    with web_client(gateway, member()) as client:
        page = client.post("/questions/ask", data=form)
    assert gateway.calls_to("POST", "/api/questions")[0].json["bounty"] == 5000
    assert "This number is too large." in page.text


def test_a_guest_is_sent_to_log_in_before_asking(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get("/questions/ask", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=")


# --- a question: what the page offers ----------------------------------------------------------


def _actions(html: str) -> set[str]:
    """The forms and edit links of the page, as ``method path`` strings."""
    posts = {f"POST {a}" for a in re.findall(r'method="post" action="([^"]+)"', html)}
    edits = {
        f"GET {a}"
        for a in re.findall(r'href="(/questions/[^"#]+(?:/edit|edit_[a-z]+=[^"#]+))', html)
    }
    return posts | edits


def test_the_asker_may_accept_another_members_answer_not_their_own(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        page = client.get(f"/questions/{QID}")
    actions = _actions(main_of(page.text))
    assert f"POST /questions/{QID}/answers/{BOBS}/accept" in actions
    assert f"POST /questions/{QID}/answers/{OWN}/accept" not in actions
    assert f"GET /questions/{QID}/edit" in actions
    assert f"POST /questions/{QID}/delete" in actions
    assert f"POST /questions/{QID}/answers/{OWN}/delete" in actions  # her own answer
    assert f"POST /questions/{QID}/answers/{BOBS}/delete" not in actions
    assert f"POST /questions/{QID}/comments/{COMMENT}/delete" not in actions
    assert f"POST /questions/{QID}/answers" in actions
    assert f"POST /questions/{QID}/comments" in actions
    assert "In &lt;order&gt;?" in page.text


def test_another_member_answers_and_changes_only_their_own(gateway: ContentGateway) -> None:
    with web_client(gateway, member(OTHER_ID, nickname="bob")) as client:
        page = client.get(f"/questions/{QID}")
    actions = _actions(main_of(page.text))
    assert not any(a.endswith("/accept") for a in actions)
    assert f"GET /questions/{QID}/edit" not in actions
    assert f"POST /questions/{QID}/answers/{BOBS}/delete" in actions
    assert f"POST /questions/{QID}/comments/{COMMENT}/delete" in actions
    assert f"POST /questions/{QID}/answers" in actions


def test_a_guest_reads_only(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get(f"/questions/{QID}")
    main = main_of(page.text)
    assert _actions(main) == set()
    assert f'href="/login?next=/questions/{QID}"' in main


def test_while_accepting_nothing_can_change_or_be_accepted(gateway: ContentGateway) -> None:
    gateway.answer("GET", f"/api/questions/{QID}", _question("ACCEPTING"))
    with web_client(gateway, member()) as client:
        page = client.get(f"/questions/{QID}")
    actions = _actions(main_of(page.text))
    assert not any(
        "/answers/" in a or (a.endswith(("/edit", "/delete")) and "/comments/" not in a)
        for a in actions
    )
    assert f"POST /questions/{QID}/answers" not in actions
    assert "An answer is being accepted" in page.text


def test_a_resolved_question_keeps_its_accepted_answer_fixed(gateway: ContentGateway) -> None:
    gateway.answer("GET", f"/api/questions/{QID}", _question("RESOLVED", accepted=BOBS))
    with web_client(gateway, member(ADMIN_ID, role="ADMIN")) as client:
        page = client.get(f"/questions/{QID}")
    actions = _actions(main_of(page.text))
    assert f"POST /questions/{QID}/answers/{BOBS}/delete" not in actions  # accepted
    assert f"POST /questions/{QID}/answers/{OWN}/delete" in actions  # an admin, not accepted
    assert f"GET /questions/{QID}/edit" not in actions  # not OPEN
    assert "Accepted" in page.text
    assert "This question takes no more answers." in page.text


def test_editing_in_place_opens_the_answer_form(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        page = client.get(f"/questions/{QID}", params={"edit_answer": OWN})
        ignored = client.get(f"/questions/{QID}", params={"edit_answer": BOBS})
    assert f'action="/questions/{QID}/answers/{OWN}/edit"' in page.text
    assert 'id="edit-answer"' in page.text
    assert f'action="/questions/{QID}/answers/{BOBS}/edit"' not in ignored.text


# --- accept -------------------------------------------------------------------------------------


def test_accepting_hands_over_to_the_live_saga_view(gateway: ContentGateway) -> None:
    gateway.answer(
        "POST",
        f"/api/questions/{QID}/answers/{BOBS}/accept",
        {"saga_id": SAGA},
        status=202,
        headers={"Location": f"/api/sagas/{SAGA}"},
    )
    with web_client(gateway, member()) as client:
        key = re.search(
            rf'answers/{BOBS}/accept">\s*<input type="hidden" name="csrf_token" value="[^"]*">\s*'
            r'<input type="hidden" name="idempotency_key" value="([^"]+)"',
            client.get(f"/questions/{QID}").text,
        )
        assert key is not None
        done = client.post(
            f"/questions/{QID}/answers/{BOBS}/accept",
            data={"idempotency_key": key.group(1)},
            follow_redirects=False,
        )
    assert done.status_code == 303
    assert done.headers["location"] == f"/sagas/{SAGA}?back=%2Fquestions%2F{QID}"
    (call,) = gateway.calls_to("POST", f"/api/questions/{QID}/answers/{BOBS}/accept")
    assert call.idempotency_key == key.group(1)
    assert call.token == "token-of-alice"


def test_an_acceptance_refused_before_the_saga_reads_on_the_question(
    gateway: ContentGateway,
) -> None:
    gateway.refuse(
        "POST",
        f"/api/questions/{QID}/answers/{OWN}/accept",
        409,
        detail="the asker cannot accept their own answer",
    )
    with web_client(gateway, member()) as client:
        page = client.post(
            f"/questions/{QID}/answers/{OWN}/accept",
            data={"idempotency_key": KEY},
            headers={"Accept-Language": "ko"},
        )
    assert page.status_code == 409
    assert (
        '<p class="error form-error" role="alert">자신의 답변은 채택할 수 없습니다</p>' in page.text
    )


def test_an_acceptance_during_an_outage_is_a_200_page_with_a_message(
    gateway: ContentGateway,
) -> None:
    gateway.refuse("POST", f"/api/questions/{QID}/answers/{BOBS}/accept", 504, detail="timeout")
    with web_client(gateway, member()) as client:
        page = client.post(
            f"/questions/{QID}/answers/{BOBS}/accept",
            data={"idempotency_key": KEY},
        )
    assert page.status_code == 200
    assert "The service is temporarily unavailable" in page.text


# --- answers, comments, edit and delete ---------------------------------------------------------


def test_answering_once_per_form_and_landing_on_the_answer(gateway: ContentGateway) -> None:
    answer = {"id": BOBS, "author": BOB, "content": "x", "accepted": False, "created_at": WHEN}
    gateway.answer("POST", f"/api/questions/{QID}/answers", answer, status=201)
    with web_client(gateway, member(OTHER_ID, nickname="bob")) as client:
        key = hidden_field(
            re.split(r'id="answer-form"', client.get(f"/questions/{QID}").text)[1],
            "idempotency_key",
        )
        done = client.post(
            f"/questions/{QID}/answers",
            data={"idempotency_key": key, "content": "x"},
            follow_redirects=False,
        )
    assert done.headers["location"] == f"/questions/{QID}#a-{BOBS}"
    (call,) = gateway.calls_to("POST", f"/api/questions/{QID}/answers")
    assert call.idempotency_key == key
    assert call.json == {"content": "x"}


def test_a_refused_answer_shows_on_the_answer_form_only(gateway: ContentGateway) -> None:
    gateway.refuse(
        "POST",
        f"/api/questions/{QID}/answers",
        422,
        errors=[
            {
                "loc": ["body", "content"],
                "msg": "Value error, must not be blank",
                "type": "value_error",
            }
        ],
    )
    with web_client(gateway, member(OTHER_ID)) as client:
        page = client.post(
            f"/questions/{QID}/answers",
            data={"idempotency_key": KEY, "content": "   "},
        )
    assert page.status_code == 422
    assert '<p class="error" id="e-new-answer">' in page.text
    assert 'id="e-new-comment"' not in page.text
    answer_form = re.split(r'id="answer-form"', page.text)[1]
    assert hidden_field(answer_form, "idempotency_key") == KEY


def test_commenting_editing_and_deleting(gateway: ContentGateway) -> None:
    comment = {"id": COMMENT, "author": BOB, "content": "c", "created_at": WHEN}
    gateway.answer("POST", f"/api/questions/{QID}/comments", comment, status=201)
    gateway.answer("PATCH", f"/api/questions/{QID}/comments/{COMMENT}", comment)
    gateway.answer("DELETE", f"/api/questions/{QID}/comments/{COMMENT}", None, status=204)
    gateway.answer("PATCH", f"/api/questions/{QID}/answers/{BOBS}", {})
    gateway.answer("DELETE", f"/api/questions/{QID}/answers/{BOBS}", None, status=204)
    with web_client(gateway, member(OTHER_ID, nickname="bob")) as client:
        added, edited, removed, answer_edited, answer_removed = (
            client.post(path, data=data, follow_redirects=False)
            for path, data in (
                (f"/questions/{QID}/comments", {"idempotency_key": KEY, "content": "c"}),
                (f"/questions/{QID}/comments/{COMMENT}/edit", {"content": "c2"}),
                (f"/questions/{QID}/comments/{COMMENT}/delete", {}),
                (f"/questions/{QID}/answers/{BOBS}/edit", {"content": "better"}),
                (f"/questions/{QID}/answers/{BOBS}/delete", {}),
            )
        )
    assert added.headers["location"] == f"/questions/{QID}#c-{COMMENT}"
    assert edited.headers["location"] == f"/questions/{QID}#c-{COMMENT}"
    assert removed.headers["location"] == f"/questions/{QID}#comments"
    assert answer_edited.headers["location"] == f"/questions/{QID}#a-{BOBS}"
    assert answer_removed.headers["location"] == f"/questions/{QID}#answers"
    assert gateway.calls_to("POST", f"/api/questions/{QID}/comments")[0].idempotency_key == KEY
    assert gateway.calls_to("PATCH", f"/api/questions/{QID}/comments/{COMMENT}")[0].json == {
        "content": "c2"
    }
    assert gateway.calls_to("PATCH", f"/api/questions/{QID}/answers/{BOBS}")[0].json == {
        "content": "better"
    }


def test_a_refused_answer_edit_reopens_it_with_the_reason(gateway: ContentGateway) -> None:
    gateway.refuse(
        "PATCH",
        f"/api/questions/{QID}/answers/{OWN}",
        409,
        detail="cannot edit an answer while the question is ACCEPTING",
    )
    with web_client(gateway, member()) as client:
        page = client.post(f"/questions/{QID}/answers/{OWN}/edit", data={"content": "kept"})
    assert page.status_code == 409
    assert "cannot edit an answer while the question is ACCEPTING" in page.text
    assert "kept</textarea>" in page.text


def test_editing_the_question(gateway: ContentGateway) -> None:
    gateway.answer("PATCH", f"/api/questions/{QID}", _question())
    with web_client(gateway, member()) as client:
        form_page = client.get(f"/questions/{QID}/edit")
        done = client.post(
            f"/questions/{QID}/edit",
            data={"title": "T2", "content": "C2", "bounty": "0"},
            follow_redirects=False,
        )
    assert 'value="How do sagas compensate?"' in form_page.text
    assert 'value="50"' in form_page.text
    assert done.headers["location"] == f"/questions/{QID}"
    (call,) = gateway.calls_to("PATCH", f"/api/questions/{QID}")
    assert call.json == {"title": "T2", "content": "C2", "bounty": 0}


def test_editing_a_question_no_longer_open_says_why(gateway: ContentGateway) -> None:
    gateway.refuse(
        "PATCH",
        f"/api/questions/{QID}",
        409,
        detail="cannot edit a question that is RESOLVED; only OPEN ones",
    )
    with web_client(gateway, member()) as client:
        page = client.post(
            f"/questions/{QID}/edit",
            data={"title": "T2", "content": "C2", "bounty": "10"},
        )
        korean = client.post(
            f"/questions/{QID}/edit",
            data={"title": "T2", "content": "C2", "bounty": "10"},
            headers={"Accept-Language": "ko"},
        )
    assert page.status_code == 409
    assert "cannot edit a question that is RESOLVED; only OPEN ones" in page.text
    assert 'value="T2"' in page.text
    assert "해결된 질문은 수정할 수 없습니다" in korean.text


def test_deleting_the_question_goes_to_a_list_without_it(gateway: ContentGateway) -> None:
    gateway.answer("DELETE", f"/api/questions/{QID}", None, status=204)
    with web_client(gateway, member()) as client:
        done = client.post(f"/questions/{QID}/delete", data={}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/questions?deleted={QID}"


def test_an_unknown_question_is_a_404_page(gateway: ContentGateway) -> None:
    gateway.refuse("GET", f"/api/questions/{NEW_Q}", 404, detail="no such question")
    with web_client(gateway, member()) as client:
        page = client.get(f"/questions/{NEW_Q}", headers={"Accept-Language": "ko"})
        not_an_id = client.get("/questions/not-an-id")
    assert page.status_code == 404
    assert "질문을 찾을 수 없습니다" in page.text
    assert not_an_id.status_code == 404


def test_an_answer_refused_because_the_question_moved_on_says_why(gateway: ContentGateway) -> None:
    """The question was resolved while bob typed: the answer form is gone from the page, and
    the refusal is shown above the question instead."""
    gateway.answer("GET", f"/api/questions/{QID}", _question("RESOLVED", accepted=BOBS))
    gateway.refuse(
        "POST",
        f"/api/questions/{QID}/answers",
        409,
        detail="only an OPEN question takes answers; it is RESOLVED",
    )
    with web_client(gateway, member(OTHER_ID, nickname="bob")) as client:
        page = client.post(
            f"/questions/{QID}/answers", data={"idempotency_key": KEY, "content": "late"}
        )
    assert page.status_code == 409
    assert "only an OPEN question takes answers; it is RESOLVED</p>" in page.text


def test_an_edit_refused_on_someone_elses_comment_says_why(gateway: ContentGateway) -> None:
    gateway.refuse(
        "PATCH",
        f"/api/questions/{QID}/comments/{COMMENT}",
        403,
        detail="only the comment's author or an admin may edit it",
    )
    with web_client(gateway, member()) as client:
        page = client.post(f"/questions/{QID}/comments/{COMMENT}/edit", data={"content": "x"})
    assert page.status_code == 403
    assert "only the comment&#39;s author or an admin may edit it</p>" in page.text


@pytest.mark.parametrize("typed", ["²", "٣", "1_0"])
def test_a_bounty_in_other_digits_goes_as_typed_for_the_api_to_name(
    gateway: ContentGateway, typed: str
) -> None:
    gateway.answer("POST", "/api/questions", {**_question(), "id": NEW_Q}, status=201)
    form = {"idempotency_key": KEY, "title": "T", "content": "C", "bounty": typed}
    with web_client(gateway, member()) as client:
        client.post("/questions/ask", data=form, follow_redirects=False)
    (call,) = gateway.calls_to("POST", "/api/questions")
    assert call.json["bounty"] == typed


@pytest.mark.parametrize("status", ["<b>NEW</b>", "100%", "%(x)s"])
def test_a_status_no_label_knows_is_shown_as_escaped_text(
    gateway: ContentGateway, status: str
) -> None:
    # data never goes through the template's gettext: no %-formatting, no unescaped markup
    gateway.answer("GET", "/api/questions", {"items": [_question(status)], "total": 1})
    gateway.answer("GET", f"/api/questions/{QID}", _question(status))
    with web_client(gateway, member()) as client:
        listing = client.get("/questions")
        detail = client.get(f"/questions/{QID}")
    for page in (listing, detail):
        assert page.status_code == 200
        assert "<b>NEW</b>" not in page.text
    assert html.escape(status, quote=False) in listing.text
