"""Board screens over a fake gateway (our own port): lists with paging and search, the admin-only write button, forms whose API errors land on their fields, idempotent creates, outages as readable 200 pages."""

from __future__ import annotations

import pytest

from tests.unit.web.content_fakes import (
    ADMIN_ID,
    MEMBER_ID,
    OTHER_ID,
    Account,
    ContentGateway,
    hidden_field,
    main_of,
    member,
    web_client,
)
from web.forms import api_detail
from web.i18n import load_catalogs

FREE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
NOTICE = "abababab-abab-4bab-8bab-abababababab"
POST = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
NEW_POST = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
COMMENT = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
KEY = "0b7e4f7a-6a4e-4c55-9d5e-1f1e5a0c2b11"
WHEN = "2026-11-30T12:00:00Z"

BOARDS = [
    {"id": NOTICE, "slug": "notice", "name": "Notices", "description": "from the admins"},
    {"id": FREE, "slug": "free", "name": "Free talk", "description": "anything"},
]


def _post(
    post_id: str = POST, author: str | None = MEMBER_ID, **extra: object
) -> dict[str, object]:
    return {
        "id": post_id,
        "board_id": FREE,
        "title": f"title of {post_id[:4]}",
        "author": {"id": author, "nickname": "alice" if author == MEMBER_ID else "bob"},
        "comment_count": 1,
        "view_count": 7,
        "created_at": WHEN,
        "updated_at": WHEN,
        **extra,
    }


def _page(*items: dict[str, object], total: int | None = None) -> dict[str, object]:
    return {
        "items": list(items),
        "total": len(items) if total is None else total,
        "page": 1,
        "size": 20,
    }


@pytest.fixture
def gateway() -> ContentGateway:
    fake = ContentGateway()
    fake.answer("GET", "/api/boards", BOARDS)
    fake.answer("GET", f"/api/boards/{FREE}/posts", _page(_post(), total=45))
    fake.answer("GET", f"/api/boards/{NOTICE}/posts", _page())
    fake.answer("GET", f"/api/posts/{POST}", _post(content="first line\nsecond <line>"))
    comment = {
        "id": COMMENT,
        "post_id": POST,
        "author": {"id": OTHER_ID, "nickname": "bob"},
        "content": "nice post",
        "created_at": WHEN,
        "updated_at": WHEN,
    }
    fake.answer(
        "GET",
        f"/api/posts/{POST}/comments",
        {"items": [comment], "total": 1, "page": 1, "size": 50},
    )
    return fake


# --- lists --------------------------------------------------------------------------------------


def test_the_board_list_links_every_board(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get("/boards")
    assert page.status_code == 200
    assert f'href="/boards/{FREE}"' in page.text
    assert "Free talk" in page.text
    assert "Only admins write here." in page.text


@pytest.mark.parametrize("failure", ["outage", "unreachable"])
def test_an_api_outage_is_a_200_page_that_says_so(gateway: ContentGateway, failure: str) -> None:
    """Web answers no 502-504 for an upstream's failure: the gateway's breaker would count it
    as web's outage and close the whole site."""
    getattr(gateway, failure)("GET", "/api/boards")
    with web_client(gateway) as client:
        boards = client.get("/boards")
        posts = client.get(f"/boards/{FREE}")
    for page in (boards, posts):
        assert page.status_code == 200
        assert "temporarily unavailable" in page.text


def test_an_outage_of_the_post_list_keeps_the_page_and_says_so(gateway: ContentGateway) -> None:
    gateway.outage("GET", f"/api/boards/{FREE}/posts")
    gateway.outage("GET", f"/api/posts/{POST}")
    with web_client(gateway, member()) as client:
        listing = client.get(f"/boards/{FREE}")
        detail = client.get(f"/posts/{POST}")
    assert listing.status_code == 200
    assert detail.status_code == 200
    assert "This list is temporarily unavailable" in listing.text
    assert "Free talk" in listing.text  # the board's own heading is still there
    assert "The service is temporarily unavailable" in detail.text


def test_paging_and_search_go_to_the_api_as_given(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get(f"/boards/{FREE}", params={"page": 2, "size": 10, "q": "  hello "})
    assert page.status_code == 200
    (call,) = gateway.calls_to("GET", f"/api/boards/{FREE}/posts")
    assert call.params == {"page": 2, "size": 10, "q": "hello"}
    # the pager keeps the search and the size (45 posts at 10 a page: 5 pages)
    assert "Page 2 of 5" in page.text
    assert f'href="/boards/{FREE}?size=10&amp;q=++hello+&amp;page=3" rel="next"' in page.text
    assert 'value="hello"' in page.text


def test_a_hand_edited_page_number_is_a_400_page_not_an_api_call(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get(f"/boards/{FREE}", params={"page": "x"})
    assert page.status_code == 400
    assert gateway.calls_to("GET", f"/api/boards/{FREE}/posts") == []


def test_an_unknown_board_is_a_404_page(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get(f"/boards/{POST}")
    assert page.status_code == 404
    assert "This page does not exist" in page.text


# --- the write button ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "board", "shown"),
    [
        (None, NOTICE, False),
        (member(), NOTICE, False),
        (member(ADMIN_ID, role="ADMIN", nickname="admin"), NOTICE, True),
        (None, FREE, True),
        (member(), FREE, True),
    ],
)
def test_the_notice_board_shows_the_write_button_only_to_admins(
    gateway: ContentGateway, session: Account | None, board: str, shown: bool
) -> None:
    with web_client(gateway, session) as client:
        page = client.get(f"/boards/{board}")
    assert (f'href="/boards/{board}/write"' in page.text) is shown


def test_the_notice_boards_refusal_reads_as_a_message_on_the_form(gateway: ContentGateway) -> None:
    gateway.refuse(
        "POST",
        f"/api/boards/{NOTICE}/posts",
        403,
        detail="only an admin may post on the notice board",
    )
    form = {"idempotency_key": KEY, "title": "mine", "content": "text"}
    with web_client(gateway, member()) as client:
        english = client.post(f"/boards/{NOTICE}/write", data=form)
        korean = client.post(
            f"/boards/{NOTICE}/write", data=form, headers={"Accept-Language": "ko"}
        )
    assert english.status_code == 403
    assert "only an admin may post on the notice board" in english.text
    assert "공지사항 게시판에는 관리자만 글을 쓸 수 있습니다" in korean.text
    assert 'value="mine"' in english.text  # the input is kept


# --- the just-created post ----------------------------------------------------------------------


def test_a_list_without_the_new_post_shows_a_row_that_refreshes_itself(
    gateway: ContentGateway,
) -> None:
    with web_client(gateway, member()) as client:
        page = client.get(f"/boards/{FREE}", params={"created": NEW_POST})
    assert page.status_code == 200
    main = main_of(page.text)
    assert "being published" in main
    assert f'href="/posts/{NEW_POST}"' in main
    # JavaScript asks the list alone again; without it, the page reloads itself
    assert f'data-poll-url="/boards/{FREE}?created={NEW_POST}&amp;fragment=1"' in main
    assert (
        f'<noscript><meta http-equiv="refresh" content="1;url=/boards/{FREE}?created={NEW_POST}&amp;poll=1"></noscript>'
        in page.text
    )


def test_the_polls_stop_after_about_ten_seconds(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        last = client.get(f"/boards/{FREE}", params={"created": NEW_POST, "poll": 9})
        spent = client.get(f"/boards/{FREE}", params={"created": NEW_POST, "poll": 10})
    assert "poll=10" in last.text
    assert "data-poll-url" in last.text
    assert "takes longer than usual" in spent.text
    assert "data-poll-url" not in spent.text
    assert 'http-equiv="refresh"' not in spent.text


def test_the_row_goes_once_the_read_model_lists_the_post(gateway: ContentGateway) -> None:
    gateway.answer("GET", f"/api/boards/{FREE}/posts", _page(_post(NEW_POST), _post()))
    with web_client(gateway, member()) as client:
        fragment = client.get(
            f"/boards/{FREE}", params={"created": NEW_POST, "poll": 3, "fragment": 1}
        )
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="post-list"')  # the list alone
    assert "<html" not in fragment.text
    assert "being published" not in fragment.text
    assert "data-poll-url" not in fragment.text
    assert f'href="/posts/{NEW_POST}"' in fragment.text


def test_a_search_or_a_later_page_does_not_wait_for_the_new_post(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        searched = client.get(f"/boards/{FREE}", params={"created": NEW_POST, "q": "x"})
        second = client.get(f"/boards/{FREE}", params={"created": NEW_POST, "page": 2})
        forged = client.get(f"/boards/{FREE}", params={"created": "not-an-id"})
    for page in (searched, second, forged):
        assert "being published" not in page.text


def test_a_deleted_post_is_left_out_while_the_read_model_still_lists_it(
    gateway: ContentGateway,
) -> None:
    with web_client(gateway, member()) as client:
        page = client.get(f"/boards/{FREE}", params={"deleted": POST})
    assert f'href="/posts/{POST}"' not in page.text


# --- write a post -------------------------------------------------------------------------------


def test_writing_a_post_redirects_to_it_and_a_double_submit_creates_one(
    gateway: ContentGateway,
) -> None:
    """Both submits carry the form's one Idempotency-Key: the service returns the first
    result to the second, so the member lands on the same post twice."""
    gateway.answer("POST", f"/api/boards/{FREE}/posts", _post(NEW_POST), status=201)
    with web_client(gateway, member()) as client:
        form_page = client.get(f"/boards/{FREE}/write")
        key = hidden_field(form_page.text, "idempotency_key")
        form = {"idempotency_key": key, "title": "Hi", "content": "there"}
        first = client.post(f"/boards/{FREE}/write", data=form, follow_redirects=False)
        second = client.post(f"/boards/{FREE}/write", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == f"/posts/{NEW_POST}?created=1"
    calls = gateway.calls_to("POST", f"/api/boards/{FREE}/posts")
    assert [c.idempotency_key for c in calls] == [key, key]
    assert calls[0].json == {"title": "Hi", "content": "there"}
    assert calls[0].token == "token-of-alice"


def test_every_rendered_form_has_its_own_key(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        one = hidden_field(client.get(f"/boards/{FREE}/write").text, "idempotency_key")
        two = hidden_field(client.get(f"/boards/{FREE}/write").text, "idempotency_key")
    assert one != two


def test_the_new_post_links_back_to_a_list_that_waits_for_it(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        page = client.get(f"/posts/{POST}", params={"created": 1})
    assert f'href="/boards/{FREE}?created={POST}"' in page.text


def test_validation_errors_land_on_their_fields_and_keep_the_input(gateway: ContentGateway) -> None:
    gateway.refuse(
        "POST",
        f"/api/boards/{FREE}/posts",
        422,
        detail="the request is not valid",
        errors=[
            {
                "loc": ["body", "title"],
                "msg": "String should have at least 1 character",
                "type": "string_too_short",
                "ctx": {"min_length": 1},
            }
        ],
    )
    form = {"idempotency_key": KEY, "title": "", "content": "kept <text>"}
    with web_client(gateway, member()) as client:
        page = client.post(f"/boards/{FREE}/write", data=form)
    assert page.status_code == 422
    main = main_of(page.text)
    assert 'aria-invalid="true" aria-describedby="e-title"' in main
    assert '<p class="error" id="e-title">This field is required.</p>' in main
    assert "Please correct the highlighted fields." in main
    assert "kept &lt;text&gt;</textarea>" in main
    assert hidden_field(main, "idempotency_key") == KEY  # a refused request stored nothing under it


def test_a_domain_refusal_naming_a_field_lands_on_it(gateway: ContentGateway) -> None:
    gateway.refuse("POST", f"/api/boards/{FREE}/posts", 422, detail="title must not be blank")
    form = {"idempotency_key": KEY, "title": "  ", "content": "x"}
    with web_client(gateway, member()) as client:
        page = client.post(f"/boards/{FREE}/write", data=form)
        korean = client.post(f"/boards/{FREE}/write", data=form, headers={"Accept-Language": "ko"})
    assert '<p class="error" id="e-title">Title: enter some text.</p>' in page.text
    assert '<p class="error" id="e-title">제목: 내용을 입력하세요.</p>' in korean.text


@pytest.mark.parametrize(
    ("detail", "korean"),
    [
        ("content must be 1 to 2000 characters", "내용: 공백만이 아닌 1~2000자로 입력하세요."),
        ("title must be 1 to 200 characters and not blank", "제목: 공백만이 아닌 1~200자로"),
        ("bounty must be between 0 and 1000", "현상금: 0~1000 사이의 숫자를 입력하세요."),
        ("more than 600 requests per minute", "1분에 600번이 넘는 요청"),
        ("more than 10 login requests per minute from this address", "1분에 10번이 넘는 요청"),
        ("service must be one of member, board, qna", "member, board, qna"),
        ("the request is not valid", "요청이 올바르지 않습니다."),
        (
            "Idempotency-Key was already used with a different request",
            "이미 다른 내용으로 제출되었습니다",
        ),
        ("the answer's author has withdrawn", "답변 작성자가 탈퇴했습니다"),
    ],
)
def test_the_services_fixed_details_read_in_korean(detail: str, korean: str) -> None:
    catalogs = load_catalogs()
    said = api_detail(detail, lambda text: str(catalogs["ko"].gettext(text)))
    assert korean in said
    assert api_detail("a detail no catalog knows", lambda text: text) == (
        "a detail no catalog knows"
    )


def test_a_write_during_an_outage_keeps_the_form_and_answers_200(gateway: ContentGateway) -> None:
    gateway.outage("POST", f"/api/boards/{FREE}/posts")
    form = {"idempotency_key": KEY, "title": "Hi", "content": "there"}
    with web_client(gateway, member()) as client:
        page = client.post(f"/boards/{FREE}/write", data=form)
    assert page.status_code == 200
    assert "The service is temporarily unavailable" in page.text
    assert 'value="Hi"' in page.text
    # the same key again: a resubmit after a timeout cannot create a second post
    assert hidden_field(page.text, "idempotency_key") == KEY


# --- a post and its comments --------------------------------------------------------------------


def test_the_post_shows_its_comments_and_only_the_allowed_buttons(gateway: ContentGateway) -> None:
    with web_client(gateway, member()) as client:
        page = client.get(f"/posts/{POST}")
    main = main_of(page.text)
    assert "first line\nsecond &lt;line&gt;" in main
    assert "nice post" in main
    assert f'href="/posts/{POST}/edit"' in main  # alice wrote the post
    assert f'action="/posts/{POST}/comments/{COMMENT}/delete"' not in main  # bob's comment
    assert f'action="/posts/{POST}/comments"' in main
    (comments,) = gateway.calls_to("GET", f"/api/posts/{POST}/comments")
    assert comments.params == {"page": 1, "size": 50}


def test_a_guest_sees_no_buttons_and_a_login_link(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get(f"/posts/{POST}")
    main = main_of(page.text)
    assert "/edit" not in main
    assert 'method="post"' not in main
    assert f'href="/login?next=/posts/{POST}"' in main


def test_an_admin_may_change_anything(gateway: ContentGateway) -> None:
    with web_client(gateway, member(ADMIN_ID, role="ADMIN")) as client:
        page = client.get(f"/posts/{POST}", params={"edit_comment": COMMENT})
    main = main_of(page.text)
    assert f'href="/posts/{POST}/edit"' in main
    assert f'action="/posts/{POST}/comments/{COMMENT}/edit"' in main  # opened in place


def test_a_missing_post_is_a_404_page(gateway: ContentGateway) -> None:
    gateway.refuse("GET", f"/api/posts/{NEW_POST}", 404, detail="post not found")
    with web_client(gateway) as client:
        page = client.get(f"/posts/{NEW_POST}")
    assert page.status_code == 404
    assert "post not found" in page.text


def test_editing_a_post_patches_it(gateway: ContentGateway) -> None:
    gateway.answer("PATCH", f"/api/posts/{POST}", _post())
    with web_client(gateway, member()) as client:
        form_page = client.get(f"/posts/{POST}/edit")
        done = client.post(
            f"/posts/{POST}/edit",
            data={"title": "new", "content": "words"},
            follow_redirects=False,
        )
    assert 'value="title of bbbb"' in form_page.text
    assert done.status_code == 303
    assert done.headers["location"] == f"/posts/{POST}"
    (call,) = gateway.calls_to("PATCH", f"/api/posts/{POST}")
    assert call.json == {"title": "new", "content": "words"}


def test_deleting_a_post_goes_back_to_a_list_without_it(gateway: ContentGateway) -> None:
    gateway.answer("DELETE", f"/api/posts/{POST}", None, status=204)
    with web_client(gateway, member()) as client:
        done = client.post(
            f"/posts/{POST}/delete",
            data={"board_id": FREE},
            follow_redirects=False,
        )
    assert done.status_code == 303
    assert done.headers["location"] == f"/boards/{FREE}?deleted={POST}"


def test_a_refused_delete_shows_why_on_the_post(gateway: ContentGateway) -> None:
    gateway.refuse(
        "DELETE",
        f"/api/posts/{POST}",
        403,
        detail="only the author or an admin may change this post",
    )
    with web_client(gateway, member(OTHER_ID)) as client:
        page = client.post(f"/posts/{POST}/delete", data={"board_id": FREE})
    assert page.status_code == 403
    assert "only the author or an admin may change this post" in main_of(page.text)


def test_a_comment_is_added_once_and_the_page_goes_to_it(gateway: ContentGateway) -> None:
    created = {
        "id": COMMENT,
        "post_id": POST,
        "author": {"id": MEMBER_ID, "nickname": "alice"},
        "content": "c",
        "created_at": WHEN,
        "updated_at": WHEN,
    }
    gateway.answer("POST", f"/api/posts/{POST}/comments", created, status=201)
    with web_client(gateway, member()) as client:
        key = hidden_field(client.get(f"/posts/{POST}").text, "idempotency_key")
        form = {"idempotency_key": key, "content": "c", "cpage": "1"}
        done = client.post(f"/posts/{POST}/comments", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/posts/{POST}?cpage=1#c-{COMMENT}"
    (call,) = gateway.calls_to("POST", f"/api/posts/{POST}/comments")
    assert call.idempotency_key == key
    assert call.json == {"content": "c"}


def test_a_refused_comment_shows_on_the_comment_form(gateway: ContentGateway) -> None:
    gateway.refuse(
        "POST",
        f"/api/posts/{POST}/comments",
        422,
        errors=[
            {
                "loc": ["body", "content"],
                "msg": "too long",
                "type": "string_too_long",
                "ctx": {"max_length": 2000},
            }
        ],
    )
    form = {"idempotency_key": KEY, "content": "my words"}
    with web_client(gateway, member()) as client:
        page = client.post(f"/posts/{POST}/comments", data=form)
    assert page.status_code == 422
    assert '<p class="error" id="e-new-comment">Too long: at most 2000 characters.</p>' in page.text
    assert "my words</textarea>" in page.text


def test_editing_and_deleting_a_comment(gateway: ContentGateway) -> None:
    path = f"/api/posts/{POST}/comments/{COMMENT}"
    gateway.answer("PATCH", path, {})
    gateway.answer("DELETE", path, None, status=204)
    with web_client(gateway, member(OTHER_ID)) as client:
        shown = client.get(f"/posts/{POST}")
        edited = client.post(
            f"/posts/{POST}/comments/{COMMENT}/edit",
            data={"content": "better", "cpage": "1"},
            follow_redirects=False,
        )
        deleted = client.post(
            f"/posts/{POST}/comments/{COMMENT}/delete",
            data={"cpage": "1"},
            follow_redirects=False,
        )
    assert f'action="/posts/{POST}/comments/{COMMENT}/delete"' in shown.text  # bob's own
    assert edited.headers["location"] == f"/posts/{POST}?cpage=1#c-{COMMENT}"
    assert deleted.headers["location"] == f"/posts/{POST}?cpage=1#comments"
    assert gateway.calls_to("PATCH", path)[0].json == {"content": "better"}
    assert len(gateway.calls_to("DELETE", path)) == 1


def test_a_refused_comment_edit_reopens_the_form_with_the_message(gateway: ContentGateway) -> None:
    gateway.refuse(
        "PATCH",
        f"/api/posts/{POST}/comments/{COMMENT}",
        403,
        detail="only the author or an admin may change this comment",
    )
    with web_client(gateway, member(OTHER_ID)) as client:
        page = client.post(
            f"/posts/{POST}/comments/{COMMENT}/edit",
            data={"content": "mine now"},
            headers={"Accept-Language": "ko"},
        )
    assert page.status_code == 403
    assert "작성자나 관리자만 이 댓글을 바꿀 수 있습니다" in page.text
    assert "mine now</textarea>" in page.text


def test_the_pages_are_korean_by_default(gateway: ContentGateway) -> None:
    with web_client(gateway) as client:
        page = client.get(f"/boards/{FREE}", headers={"Accept-Language": "ko"})
    assert "제목 검색" in page.text
    assert "작성자" in page.text


def test_after_a_write_the_next_page_says_lists_may_lag(gateway: ContentGateway) -> None:
    gateway.answer("POST", f"/api/boards/{FREE}/posts", _post(POST), status=201)
    form = {"idempotency_key": KEY, "title": "Hi", "content": "there"}
    with web_client(gateway, member()) as client:
        landed = client.post(f"/boards/{FREE}/write", data=form)
        again = client.get(f"/posts/{POST}")
    assert landed.status_code == 200
    assert str(landed.url).endswith(f"/posts/{POST}?created=1")
    assert "Saved. Lists may take a moment to show the change." in landed.text
    assert "Saved." not in again.text  # one-shot


def test_a_refused_edit_whose_form_cannot_show_still_says_why(gateway: ContentGateway) -> None:
    """Alice may not edit bob's comment, so the page has no edit form for it: the refusal is
    shown above the post instead of being lost."""
    gateway.refuse(
        "PATCH",
        f"/api/posts/{POST}/comments/{COMMENT}",
        403,
        detail="only the author or an admin may change this comment",
    )
    with web_client(gateway, member()) as client:
        page = client.post(f"/posts/{POST}/comments/{COMMENT}/edit", data={"content": "x"})
    assert page.status_code == 403
    assert (
        '<p class="error form-error" role="alert">only the author or an admin may change this comment</p>'
        in page.text
    )
