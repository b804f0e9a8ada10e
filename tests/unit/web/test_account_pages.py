"""Account screens over a fake gateway: sign-up, profile, password, withdrawal with its live saga view, and my page's degraded parts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.web.fakes import Call, World, csrf_of, log_in, ok, problem
from web.adapters.gateway_client import ApiError
from web.sessions import SESSION_COOKIE, session_key

EN = {"Accept-Language": "en"}


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, base_url="http://web.test", headers=EN) as test_client:
        yield test_client


def token(client: TestClient, page: str = "/account") -> str:
    return csrf_of(client.get(page).text)


# -- sign-up ------------------------------------------------------------------------------


def test_sign_up_sends_one_idempotency_key_and_goes_to_log_in(
    client: TestClient, world: World
) -> None:
    world.gateway.on("POST /api/members", ok(world.me, 201))
    form = client.get("/signup").text
    key = form.split('name="idempotency_key" value="')[1].split('"')[0]
    answer = client.post(
        "/signup",
        data={
            "csrf_token": csrf_of(form),
            "idempotency_key": key,
            "email": " alice@example.com ",
            "nickname": "alice",
            "password": "pw-123456",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    call = world.gateway.called("POST /api/members")[-1]
    assert call.idempotency_key == key
    assert call.json == {"email": "alice@example.com", "password": "pw-123456", "nickname": "alice"}
    assert "Your account is ready. Please log in." in client.get("/login").text


def test_a_taken_nickname_shows_on_its_field_translated_with_the_api_status(
    client: TestClient, world: World
) -> None:
    world.gateway.on("POST /api/members", problem(409, "this nickname is already taken"))
    form = client.get("/signup", headers={"Accept-Language": "ko"}).text
    page = client.post(
        "/signup",
        data={"csrf_token": csrf_of(form), "email": "a@example.com", "nickname": "alice"},
        headers={"Accept-Language": "ko"},
    )
    assert page.status_code == 409
    assert 'id="e-nickname">이미 사용 중인 닉네임입니다.' in page.text
    assert 'value="alice"' in page.text
    assert 'value="a@example.com"' in page.text


def test_schema_errors_land_on_their_fields(client: TestClient, world: World) -> None:
    world.gateway.on(
        "POST /api/members",
        problem(
            422,
            "request validation failed",
            errors=[{"loc": ["body", "email"], "msg": "not an email", "type": "value_error"}],
        ),
    )
    page = client.post("/signup", data={"csrf_token": token(client, "/signup"), "email": "x"})
    assert page.status_code == 422
    assert 'id="e-email">Enter a valid email address.' in page.text


def _too(kind: str, field: str, **ctx: int) -> ApiError:
    entry: dict[str, Any] = {"loc": ["body", field], "msg": "pydantic's text", "type": kind}
    if ctx:
        entry["ctx"] = ctx
    return problem(422, "the request is not valid", errors=[entry])


@pytest.mark.parametrize(
    ("refusal", "field", "english", "korean"),
    [
        (
            _too("string_too_short", "password", min_length=8),
            "password",
            "Too short: at least 8 characters.",
            "너무 짧습니다. 8자 이상 입력하세요.",
        ),
        (
            _too("string_too_short", "email", min_length=3),
            "email",
            "Too short: at least 3 characters.",
            "너무 짧습니다. 3자 이상 입력하세요.",
        ),
        (
            _too("string_too_long", "password", max_length=128),
            "password",
            "Too long: at most 128 characters.",
            "너무 깁니다. 128자 이하로 입력하세요.",
        ),
        (
            _too("string_too_short", "nickname", min_length=1),
            "nickname",
            "This field is required.",
            "필수 항목입니다.",
        ),
    ],
    ids=["short-password", "short-email", "long-password", "blank"],
)
def test_a_length_refusal_says_the_bound_on_any_field(
    client: TestClient, world: World, refusal: ApiError, field: str, english: str, korean: str
) -> None:
    world.gateway.on("POST /api/members", refusal)
    for lang, text in (("en", english), ("ko", korean)):
        page = client.post(
            "/signup",
            data={"csrf_token": token(client, "/signup"), "email": "x", "password": "1234567"},
            headers={"Accept-Language": lang},
        )
        assert page.status_code == 422
        assert f'id="e-{field}">{text}</p>' in page.text


def _said_once(page: str, text: str) -> None:
    main = page.split('<main id="main"', 1)[1]
    assert main.count(text) == 1, main
    assert "Please correct the highlighted fields." in main


@pytest.mark.parametrize(
    ("status", "detail", "field"),
    [
        (409, "this email is already registered", "email"),
        (422, "nickname must be 2 to 20 characters", "nickname"),
    ],
)
def test_a_sign_up_refusal_on_a_field_is_said_once(
    client: TestClient, world: World, status: int, detail: str, field: str
) -> None:
    world.gateway.on("POST /api/members", problem(status, detail))
    page = client.post("/signup", data={"csrf_token": token(client, "/signup"), "email": "a@b.c"})
    assert f'id="e-{field}">{detail}' in page.text
    _said_once(page.text, detail)


def test_a_nickname_refusal_on_the_profile_is_said_once(client: TestClient, world: World) -> None:
    log_in(client)
    world.gateway.on("PATCH /api/members/me", problem(422, "nickname must be 2 to 20 characters"))
    page = client.post("/account/profile", data={"csrf_token": token(client), "nickname": "a"})
    _said_once(page.text, "nickname must be 2 to 20 characters")


# -- profile and password -----------------------------------------------------------------


def test_a_saved_nickname_shows_in_the_header_at_once(client: TestClient, world: World) -> None:
    log_in(client)

    def patch(call: Call) -> Any:
        world.me["nickname"] = call.json["nickname"]
        return ok(world.me)

    world.gateway.on("PATCH /api/members/me", patch)
    answer = client.post(
        "/account/profile",
        data={"csrf_token": token(client), "nickname": "bob"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    page = client.get("/account")
    assert '<span class="who">bob</span>' in page.text
    assert "Your profile is saved." in page.text


def test_a_new_password_signs_in_again_on_a_new_session(client: TestClient, world: World) -> None:
    """Member revokes every refresh token on a password change: web logs in again at once."""
    old_cookie = log_in(client)
    world.gateway.on("PATCH /api/members/me", ok(world.me))
    mismatch = client.post(
        "/account/password",
        data={
            "csrf_token": token(client),
            "current_password": "pw-123456",
            "password": "new-pass-1",
            "password2": "new-pass-2",
        },
    )
    assert mismatch.status_code == 422
    assert "The two new passwords are not the same." in mismatch.text
    assert world.gateway.called("PATCH /api/members/me") == []
    answer = client.post(
        "/account/password",
        data={
            "csrf_token": token(client),
            "current_password": "pw-123456",
            "password": "new-pass-1",
            "password2": "new-pass-1",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert world.gateway.called("POST /api/auth/login")[-1].json == {
        "email": world.me["email"],
        "password": "new-pass-1",
    }
    assert client.cookies[SESSION_COOKIE] != old_cookie
    assert session_key(old_cookie) not in world.records.data


def test_a_wrong_current_password_is_shown_on_its_field(client: TestClient, world: World) -> None:
    log_in(client)
    world.gateway.on("PATCH /api/members/me", problem(403, "the current password is wrong"))
    page = client.post(
        "/account/password",
        data={
            "csrf_token": token(client),
            "current_password": "x",
            "password": "new-pass-1",
            "password2": "new-pass-1",
        },
    )
    assert page.status_code == 403
    assert 'id="e-current_password">the current password is wrong' in page.text
    _said_once(page.text, "the current password is wrong")


# -- withdrawal and the saga view ---------------------------------------------------------


def saga(status: str, steps: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": "member-withdrawal",
        "status": status,
        "steps": [
            {"name": n, "status": s, "kind": "compensatable", "retries": 0} for n, s in steps
        ],
        "failure_reason": None,
        "started_at": "2026-11-30T00:00:00Z",
        "ended_at": None,
        **extra,
    }


def start_withdrawal(client: TestClient, world: World) -> str:
    saga_id = str(uuid.uuid4())
    world.gateway.on("DELETE /api/members/me", ok({"saga_id": saga_id}, 202))
    page = client.get("/account/withdraw").text
    refused = client.post("/account/withdraw", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 422
    assert "Tick the box" in refused.text
    assert world.gateway.called("DELETE /api/members/me") == []
    answer = client.post(
        "/account/withdraw",
        data={"csrf_token": csrf_of(page), "confirm": "yes"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/sagas/{saga_id}"
    assert world.gateway.called("DELETE /api/members/me")[-1].idempotency_key
    return saga_id


def test_withdrawal_completed_is_the_401_and_logs_the_member_out(
    client: TestClient, world: World
) -> None:
    cookie = log_in(client)
    saga_id = start_withdrawal(client, world)
    assert world.records.data[session_key(cookie)]["withdrawal_saga_id"] == saga_id
    world.gateway.on(
        f"GET /api/sagas/{saga_id}",
        ok(saga("RUNNING", [("start-withdrawal", "SUCCEEDED"), ("anonymize-author", "RUNNING")])),
    )
    running = client.get(f"/sagas/{saga_id}")
    assert running.status_code == 200
    assert '<meta http-equiv="refresh" content="2">' in running.text  # inside <noscript>
    assert f'data-poll="/sagas/{saga_id}/steps"' in running.text
    assert 'data-step-status="RUNNING"' in running.text
    fragment = client.get(f"/sagas/{saga_id}/steps")
    assert fragment.text.lstrip().startswith('<div class="saga-state" data-status="RUNNING"')
    # the pivot ran: member revoked the tokens and the deny-list refuses the access token
    world.mint.revoked = True
    world.gateway.on(f"GET /api/sagas/{saga_id}", problem(401, "token revoked"))
    done = client.get(f"/sagas/{saga_id}/steps")
    assert done.status_code == 200
    assert 'data-status="WITHDRAWN" data-terminal="true"' in done.text
    assert "Your account was withdrawn and you are logged out." in done.text
    assert "Max-Age=0" in done.headers["set-cookie"]
    assert session_key(cookie) not in world.records.data


def test_withdrawal_starts_with_a_whole_token_life_ahead(client: TestClient, world: World) -> None:
    """member refuses to refresh a WITHDRAWING member's tokens, and this session reads a 401
    during its withdrawal as COMPLETED: a refresh due mid-saga would log the member out while
    the saga could still compensate. So the DELETE goes with a token refreshed just before."""
    log_in(client)
    world.clock.advance(world.mint.expires_in - 120)  # 2 minutes left: no refresh due yet
    before = world.mint.refreshes
    start_withdrawal(client, world)
    assert world.mint.refreshes == before + 1
    delete = world.gateway.called("DELETE /api/members/me")[-1]
    assert delete.token == f"access-{world.mint.issued}"  # the new token, a whole life ahead


def test_withdrawal_compensated_shows_the_reason_and_the_account_stays(
    client: TestClient, world: World
) -> None:
    cookie = log_in(client)
    saga_id = start_withdrawal(client, world)
    reason = "step retire-author (RetireAuthor) failed: a question is accepting an answer"
    world.gateway.on(
        f"GET /api/sagas/{saga_id}",
        ok(
            saga(
                "COMPENSATED",
                [("start-withdrawal", "COMPENSATED"), ("retire-author", "FAILED")],
                failure_reason=reason,
            )
        ),
    )
    page = client.get(f"/sagas/{saga_id}")
    assert 'data-terminal="true"' in page.text
    assert "http-equiv" not in page.text  # a finished saga does not reload
    # the service's own words, dynamic and English: quoted and labelled as such
    assert f'the service said: <q class="failure-reason" lang="en">{reason}</q>' in page.text
    assert "Your account is still active" in page.text
    assert session_key(cookie) in world.records.data


def test_the_acceptance_view_links_back_to_its_question_and_never_elsewhere(
    client: TestClient, world: World
) -> None:
    log_in(client)
    saga_id, qid = str(uuid.uuid4()), str(uuid.uuid4())
    body = saga("COMPLETED", [("transfer-points", "SUCCEEDED")], type="answer-acceptance")
    world.gateway.on(f"GET /api/sagas/{saga_id}", ok(body))
    page = client.get(f"/sagas/{saga_id}?back=/questions/{qid}")
    assert f'<a href="/questions/{qid}">Back</a>' in page.text
    assert "points have moved" in page.text
    assert f"/sagas/{saga_id}/steps?back=/questions/{qid}" in page.text
    evil = client.get(f"/sagas/{saga_id}?back=//evil.example/")
    assert ">Back</a>" not in evil.text
    assert 'data-poll="/sagas/' + saga_id + '/steps"' in evil.text


def test_a_saga_the_api_cannot_show_now_is_a_page_that_keeps_polling(
    client: TestClient, world: World
) -> None:
    log_in(client)
    saga_id = str(uuid.uuid4())
    world.gateway.on(f"GET /api/sagas/{saga_id}", problem(503, "upstream unavailable"))
    page = client.get(f"/sagas/{saga_id}")
    assert page.status_code == 200  # never a 5xx relayed
    assert "cannot be loaded right now" in page.text
    assert 'data-terminal="false"' in page.text


def test_the_saga_view_needs_a_signed_in_member(client: TestClient) -> None:
    saga_id = str(uuid.uuid4())
    answer = client.get(f"/sagas/{saga_id}", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?next=%2Fsagas%2F{saga_id}"


# -- my page ------------------------------------------------------------------------------


def test_my_page_names_the_degraded_parts_and_shows_the_rest(
    client: TestClient, world: World
) -> None:
    log_in(client)
    world.gateway.on(
        "GET /api/me/dashboard",
        ok(
            {
                "member": world.me,
                "activity": None,
                "recent_posts": [{"id": "p1", "title": "Hello", "created_at": "2026-11-30"}],
                "recent_questions": None,
                "degraded": ["activity", "recent_questions"],
            }
        ),
    )
    page = client.get("/me")
    assert page.status_code == 200
    assert "Some parts could not be loaded: Activity and points, My recent questions." in page.text
    assert 'data-part="activity" data-degraded="true"' in page.text
    assert 'data-part="recent_questions" data-degraded="true"' in page.text
    assert '<a href="/posts/p1">Hello</a>' in page.text
    assert '<dd class="points">100</dd>' in page.text


def test_my_page_with_the_gateway_down_is_still_a_page(client: TestClient, world: World) -> None:
    log_in(client)
    world.gateway.down = True
    page = client.get("/me")
    assert page.status_code == 200
    assert page.text.count('data-degraded="true"') == 4


def test_my_page_shows_question_statuses_with_the_lists_labels(
    client: TestClient, world: World
) -> None:
    log_in(client)
    dashboard = {
        "member": world.me,
        "activity": None,
        "recent_posts": [],
        "recent_questions": [
            {"id": str(uuid.uuid4()), "title": "Q", "status": "RESOLVED"},
            {"id": str(uuid.uuid4()), "title": "R", "status": "<i>ODD%</i>"},
        ],
        "degraded": ["activity"],
    }
    world.gateway.on("GET /api/me/dashboard", ok(dashboard))
    page = client.get("/me", headers={"Accept-Language": "ko"})
    assert page.status_code == 200
    assert ">해결됨</span>" in page.text
    assert "RESOLVED</span>" not in page.text
    assert "&lt;i&gt;ODD%&lt;/i&gt;" in page.text


@pytest.mark.parametrize(("expires_in", "said"), [(900, "within 15 minutes"), (None, "shortly")])
def test_a_password_change_says_when_other_devices_are_out(
    client: TestClient, world: World, expires_in: int | None, said: str
) -> None:
    """Member revokes the other devices' refresh tokens; their access tokens live on until
    they expire: the message must not say they are out already."""
    log_in(client)
    world.gateway.on("PATCH /api/members/me", ok(world.me))

    def login(call: Call) -> Any:
        pair = world.mint.pair()
        if expires_in is None:
            del pair["expires_in"]
        return ok(pair)

    world.gateway.on("POST /api/auth/login", login)
    page = client.post(
        "/account/password",
        data={
            "csrf_token": token(client),
            "current_password": "pw-123456",
            "password": "new-pass-1",
            "password2": "new-pass-1",
        },
    )
    assert f"Other devices are signed out {said}" in page.text
    assert "have been logged out" not in page.text
