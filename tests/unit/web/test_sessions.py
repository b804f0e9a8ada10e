"""The BFF session layer: sign-in without fixation, CSRF, single-flight token refresh, the 401 retry, the end of a session, Redis down (fakes of our own ports, a hand-held clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from tests.unit.web.fakes import SETTINGS, Call, World, csrf_of, log_in, ok, problem
from web.adapters.gateway_client import ApiError
from web.entrypoints.deps import Api, CsrfForm, Member
from web.sessions import (
    SESSION_COOKIE,
    Session,
    SessionEnded,
    SessionStore,
    SignInUnavailable,
    session_key,
)

probe = APIRouter()


@probe.get("/probe", response_class=PlainTextResponse)
async def probe_page(member: Member, api: Api) -> str:
    """A signed-in page that calls the API once (what every member page does)."""
    body = await api.get("/api/members/me")
    return f"{member.nickname}:{body['nickname']}"


@probe.post("/probe", response_class=PlainTextResponse)
async def probe_form(form: CsrfForm, member: Member, api: Api) -> str:
    await api.call("POST", "/api/probe-write", json=form)
    return "written"


@pytest.fixture
def world() -> World:
    built = World()
    built.app.include_router(probe)
    return built


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, base_url="http://web.test") as test_client:
        yield test_client


# -- sign-in ------------------------------------------------------------------------------


def test_login_starts_a_new_session_id_and_deletes_the_guest_one(
    client: TestClient, world: World
) -> None:
    """Session fixation: the cookie a visitor had before logging in is worthless after it."""
    form = client.get("/login?next=/questions")
    guest_cookie = client.cookies[SESSION_COOKIE]
    set_cookie = form.headers["set-cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    assert "Path=/" in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP here (see the https test)
    assert session_key(guest_cookie) in world.records.data
    answer = client.post(
        "/login",
        data={
            "csrf_token": csrf_of(form.text),
            "email": "alice@example.com",
            "password": "pw-123456",
            "next": "/questions",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/questions"
    member_cookie = client.cookies[SESSION_COOKIE]
    assert member_cookie != guest_cookie
    assert len(member_cookie) >= 43  # 256 bits, URL-safe base64
    assert session_key(guest_cookie) not in world.records.data
    stored = world.records.data[session_key(member_cookie)]
    assert stored["member_id"] == world.me["id"]
    assert stored["access_token"] == "access-1"
    assert member_cookie not in str(world.records.data)  # only its hash is stored
    # the new session's CSRF token is a new one too
    assert stored["csrf"] != world.records.data.get(session_key(guest_cookie), {}).get("csrf")


def test_cookie_is_secure_and_host_prefixed_over_https(world: World) -> None:
    with TestClient(world.app, base_url="https://web.test") as secure:
        page = secure.get("/login")
        set_cookie = page.headers["set-cookie"]
        assert set_cookie.startswith("__Host-msa_session=")
        assert "Secure" in set_cookie
        assert "Path=/" in set_cookie
        assert "Domain" not in set_cookie


def test_a_bad_password_shows_a_readable_message_on_the_form(
    client: TestClient, world: World
) -> None:
    world.gateway.on("POST /api/auth/login", problem(401, "email or password is wrong"))
    token = csrf_of(client.get("/login").text)
    page = client.post(
        "/login",
        data={"csrf_token": token, "email": "alice@example.com", "password": "nope"},
        headers={"Accept-Language": "en"},
    )
    assert page.status_code == 200
    assert "Email or password is wrong." in page.text
    assert 'value="alice@example.com"' in page.text  # the input is kept
    assert "problem" not in page.text


# -- CSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "headers"),
    [
        (None, {}),
        ("wrong", {}),
        ("<right>", {"Sec-Fetch-Site": "cross-site"}),
        ("<right>", {"Origin": "https://evil.example"}),
        ("<right>", {"Referer": "https://evil.example/form"}),
    ],
    ids=["missing", "wrong", "fetch-metadata-cross-site", "foreign-origin", "foreign-referer"],
)
def test_a_post_without_the_session_token_or_from_elsewhere_is_refused_before_any_api_call(
    client: TestClient, world: World, token: str | None, headers: dict[str, str]
) -> None:
    log_in(client)
    right = csrf_of(client.get("/login?next=/x", follow_redirects=True).text)
    calls = len(world.gateway.calls)
    data = {"title": "x"}
    if token is not None:
        data["csrf_token"] = right if token == "<right>" else token
    answer = client.post("/probe", data=data, headers={"Accept-Language": "en", **headers})
    assert answer.status_code == 403
    assert "This form has expired" in answer.text
    assert len(world.gateway.calls) == calls  # nothing reached the API


def test_the_right_token_from_our_own_pages_is_accepted(client: TestClient, world: World) -> None:
    log_in(client)
    token = csrf_of(client.get("/login", follow_redirects=True).text)
    for headers in (
        {},
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://web.test"},
        {"X-CSRF-Token": token},
    ):
        data = {} if "X-CSRF-Token" in headers else {"csrf_token": token}
        answer = client.post("/probe", data=data, headers=headers)
        assert answer.status_code == 200, (headers, answer.text)
        assert answer.text == "written"
    sent = world.gateway.called("POST /api/probe-write")[-1].json
    assert "csrf_token" not in sent  # the token never leaves web


# -- refresh ------------------------------------------------------------------------------


async def signed_in(world: World) -> Session:
    _, session = await world.store.sign_in(None, world.mint.pair(), world.me)
    return session


async def test_a_token_far_from_expiry_is_used_as_is_and_one_within_the_margin_is_refreshed(
    world: World,
) -> None:
    session = await signed_in(world)
    world.clock.advance(900 - 31)  # 31 s left: outside the 30 s margin
    assert (await world.store.fresh(session)).access_token == "access-1"
    world.clock.advance(2)  # 29 s left
    refreshed = await world.store.fresh(session)
    assert refreshed.access_token == "access-2"
    assert refreshed.access_expires_at == world.clock() + 900
    assert world.records.data[session.key]["refresh_token"] == "refresh-2"
    assert world.mint.refreshes == 1


async def test_concurrent_requests_of_one_session_refresh_exactly_once(world: World) -> None:
    """Two tabs (here 20 requests) meeting an expiring token at once: one refresh, one new
    pair for all; a second refresh with the spent token would revoke the family."""
    session = await signed_in(world)
    world.clock.advance(900)
    release = asyncio.Event()

    async def slow_refresh(call: Call) -> Any:
        await release.wait()
        return ok(world.mint.refresh(call.json["refresh_token"]))

    world.gateway.on("POST /api/auth/refresh", slow_refresh)
    waiting = [asyncio.create_task(world.store.fresh(session)) for _ in range(20)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*waiting)
    assert {s.access_token for s in results} == {"access-2"}
    assert world.mint.refreshes == 1
    assert not world.mint.revoked


async def test_two_replicas_refresh_one_session_once(world: World) -> None:
    """Across processes the Redis lock serializes: the second replica waits for the first's
    pair instead of spending the same refresh token."""
    session = await signed_in(world)
    world.clock.advance(900)
    other = SessionStore(world.records, world.gateway, SETTINGS, clock=world.clock)
    release = asyncio.Event()

    async def slow_refresh(call: Call) -> Any:
        await release.wait()
        return ok(world.mint.refresh(call.json["refresh_token"]))

    world.gateway.on("POST /api/auth/refresh", slow_refresh)
    first = asyncio.create_task(world.store.fresh(session))
    await asyncio.sleep(0.01)  # the first replica holds the lock
    second = asyncio.create_task(other.fresh(session))
    await asyncio.sleep(0.12)  # the second polls the session meanwhile
    release.set()
    results = await asyncio.gather(first, second)
    assert [s.access_token for s in results] == ["access-2", "access-2"]
    assert world.mint.refreshes == 1
    assert not world.mint.revoked


def test_a_401_to_a_believed_valid_token_gets_one_refresh_and_one_retry(
    client: TestClient, world: World
) -> None:
    cookie = log_in(client)
    world.mint.valid_access.clear()  # e.g. a key rotation: the token is refused before expiry
    page = client.get("/probe")
    assert page.status_code == 200
    assert page.text == "alice:alice"
    assert world.mint.refreshes == 1
    tokens = [c.token for c in world.gateway.called("GET /api/members/me")]
    assert tokens[-2:] == ["access-1", "access-2"]  # the refused call, then one retry
    assert world.records.data[session_key(cookie)]["access_token"] == "access-2"


def test_a_second_401_is_not_retried_again(client: TestClient, world: World) -> None:
    log_in(client)
    calls_before = len(world.gateway.called("GET /api/members/me"))
    world.gateway.on("GET /api/members/me", problem(401, "no"))
    page = client.get("/probe", headers={"Accept-Language": "en"})
    assert page.status_code == 400  # a readable page, not a loop of refreshes
    assert "problem" not in page.text
    assert len(world.gateway.called("GET /api/members/me")) - calls_before == 2
    assert world.mint.refreshes == 1


def test_a_refused_refresh_ends_the_session_and_sends_the_member_to_log_in(
    client: TestClient, world: World
) -> None:
    cookie = log_in(client)
    world.mint.revoked = True
    world.clock.advance(900)
    answer = client.get("/probe?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fprobe%3Fx%3D1&notice=ended"
    assert "msa_session=;" in answer.headers["set-cookie"]
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert session_key(cookie) not in world.records.data
    page = client.get(answer.headers["location"], headers={"Accept-Language": "en"})
    assert "Your session has ended" in page.text


async def test_a_refresh_the_api_cannot_answer_now_keeps_the_session(world: World) -> None:
    session = await signed_in(world)
    world.clock.advance(900)
    world.gateway.on("POST /api/auth/refresh", problem(503, "upstream unavailable"))
    with pytest.raises(ApiError) as unavailable:
        await world.store.fresh(session)
    assert unavailable.value.unavailable
    assert world.records.data[session.key]["refresh_token"] == "refresh-1"


async def test_a_refused_refresh_raises_session_ended_with_the_session(world: World) -> None:
    session = await signed_in(world)
    world.mint.revoked = True
    with pytest.raises(SessionEnded) as ended:
        await world.store.fresh(session, rejected_token=session.access_token)
    assert ended.value.session.member_id == world.me["id"]
    assert session.key not in world.records.data


# -- lifetimes ----------------------------------------------------------------------------


async def test_idle_ttl_slides_at_most_once_a_minute_and_max_age_ends_the_session(
    world: World,
) -> None:
    cookie, _ = await world.store.sign_in(None, world.mint.pair(), world.me)
    key = session_key(cookie)
    assert world.records.ttl[key] == world.clock() + SETTINGS.SESSION_IDLE_SECONDS
    world.clock.advance(30)
    await world.store.load(cookie)
    assert world.records.ttl[key] == world.clock() - 30 + SETTINGS.SESSION_IDLE_SECONDS
    world.clock.advance(31)
    await world.store.load(cookie)
    assert world.records.ttl[key] == world.clock() + SETTINGS.SESSION_IDLE_SECONDS
    # keep it busy until its maximum age: it ends even though it was never idle
    for _ in range(SETTINGS.SESSION_MAX_AGE_SECONDS // 3600 - 1):
        world.clock.advance(3600)
        assert await world.store.load(cookie) is not None
    world.clock.advance(3600)
    assert await world.store.load(cookie) is None
    assert key not in world.records.data


async def test_a_guest_session_lives_anon_seconds_and_holds_only_a_csrf_token(
    world: World,
) -> None:
    cookie, guest = await world.store.start_guest()
    assert not guest.signed_in
    assert guest.csrf
    assert world.records.ttl[guest.key] == world.clock() + SETTINGS.ANON_SESSION_SECONDS
    stored = world.records.data[guest.key]
    assert stored["csrf"] == guest.csrf
    assert not {"member_id", "access_token", "refresh_token"} & set(stored)
    world.clock.advance(SETTINGS.ANON_SESSION_SECONDS)
    assert await world.store.load(cookie) is None


def test_a_flash_is_shown_once(client: TestClient, world: World) -> None:
    log_in(client)  # in Korean, the default language: the message is translated when kept
    first = client.get("/")
    assert "alice님, 환영합니다." in first.text
    second = client.get("/")
    assert "환영합니다." not in second.text


def test_logout_revokes_the_refresh_token_deletes_the_session_and_the_cookie(
    client: TestClient, world: World
) -> None:
    cookie = log_in(client)
    token = csrf_of(client.get("/login", follow_redirects=True).text)
    answer = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/?notice=logged-out"
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert world.gateway.called("POST /api/auth/logout")[-1].json == {"refresh_token": "refresh-1"}
    assert session_key(cookie) not in world.records.data


# -- Redis down ---------------------------------------------------------------------------


def test_with_the_store_down_guests_read_members_see_why_and_posts_fail_closed(
    client: TestClient, world: World
) -> None:
    cookie = log_in(client)
    token = csrf_of(client.get("/login", follow_redirects=True).text)
    world.records.down = True
    home = client.get("/", headers={"Accept-Language": "en"})
    assert home.status_code == 200
    assert "Sign-in is temporarily unavailable" in home.text
    page = client.get("/probe", headers={"Accept-Language": "en"}, follow_redirects=False)
    assert page.status_code == 200  # never a 5xx: the gateway's breaker would count it
    assert "Sign-in is temporarily unavailable" in page.text
    calls = len(world.gateway.calls)
    posted = client.post(
        "/probe",
        data={"csrf_token": token},
        headers={"Accept-Language": "en"},
        follow_redirects=False,
    )
    assert posted.status_code == 200
    assert "Sign-in is temporarily unavailable" in posted.text
    assert len(world.gateway.calls) == calls  # fail closed: nothing was written
    assert "set-cookie" not in posted.headers
    assert "set-cookie" not in page.headers
    assert client.cookies[SESSION_COOKIE] == cookie  # kept: back when Redis is
    world.records.down = False
    assert client.get("/probe").text == "alice:alice"


async def test_store_errors_surface_as_sign_in_unavailable(world: World) -> None:
    world.records.down = True
    with pytest.raises(SignInUnavailable):
        await world.store.start_guest()
    with pytest.raises(SignInUnavailable):
        await world.store.load("cookie")
