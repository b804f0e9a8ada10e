"""Text identity against real PostgreSQL and Redis: emails and nicknames that read the same are one."""

from __future__ import annotations

import unicodedata
import uuid

import httpx
import pytest

from tests.integration.member.helpers import PASSWORD, bearer, log_in, sign_up, unique_email

pytestmark = pytest.mark.integration


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


async def post_member(client: httpx.AsyncClient, email: str, nickname: str) -> httpx.Response:
    return await client.post(
        "/api/members", json={"email": email, "password": PASSWORD, "nickname": nickname}
    )


async def test_an_email_in_another_case_with_padding_is_a_duplicate(
    client: httpx.AsyncClient,
) -> None:
    """Text identity: "Hong@Example.com" then "hong@example.com " is 409; the first is shown as typed."""
    local = f"Hong.{uuid.uuid4().hex[:8]}"
    first = await post_member(client, f"{local}@Example.com", "hong1")
    assert first.status_code == 201, first.text
    assert first.json()["email"] == f"{local}@Example.com"

    again = await post_member(client, f"{local.lower()}@example.com ", "hong2")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("taken", "attempt"),
    [("홍길동", nfd("홍길동")), (nfd("홍길동"), "홍길동"), ("Straße", "STRASSE")],
    ids=["nfc-then-nfd", "nfd-then-nfc", "sharp-s"],
)
async def test_a_nickname_that_reads_the_same_is_a_duplicate(
    client: httpx.AsyncClient, taken: str, attempt: str
) -> None:
    """Text identity: a nickname in another normalization form or by full case folding is 409."""
    suffix = uuid.uuid4().hex[:6]
    first = await post_member(client, unique_email(), taken + suffix)
    assert first.status_code == 201, first.text
    assert first.json()["nickname"] == unicodedata.normalize("NFC", taken + suffix)

    again = await post_member(client, unique_email(), attempt + suffix.upper())
    assert again.status_code == 409, again.text


async def test_login_with_another_case_or_normalization_form_of_the_email(
    client: httpx.AsyncClient,
) -> None:
    """Text identity: login finds the member by the canonical email, however it is typed."""
    local = f"Kim.{uuid.uuid4().hex[:8]}"
    await sign_up(client, email=f"{local}@Example.com")
    for typed in (f"  {local.upper()}@EXAMPLE.COM", nfd(f"{local.lower()}@example.com\u3000")):
        tokens = await log_in(client, typed)
        assert tokens["token_type"] == "bearer"


async def test_login_failures_count_once_per_text_identity(client: httpx.AsyncClient) -> None:
    """Text identity of the throttle key: another case of the email does not get a fresh count."""
    local = f"Lee.{uuid.uuid4().hex[:8]}"
    await sign_up(client, email=f"{local}@example.com")
    spellings = [
        f"{local}@example.com",
        f"{local.upper()}@EXAMPLE.COM",
        f" {local.lower()}@Example.com",
    ]
    for attempt in range(5):
        wrong = await client.post(
            "/api/auth/login",
            json={"email": spellings[attempt % 3], "password": "wrong-password"},
        )
        assert wrong.status_code == 401
    locked = await client.post(
        "/api/auth/login", json={"email": f"{local.upper()}@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 429


@pytest.mark.parametrize(
    ("theirs", "clash"),
    [("Alice", "ALICE"), ("Straße", "STRASSE"), ("Straße", "strasse"), ("홍길동", nfd("홍길동"))],
    ids=["ascii-case", "sharp-s-upper", "sharp-s-lower", "nfd-hangul"],
)
async def test_patching_to_another_members_nickname_in_another_case_is_a_conflict(
    client: httpx.AsyncClient, theirs: str, clash: str
) -> None:
    """Text identity: PATCH to a nickname that differs from another member's only by (full) case
    folding or normalization form is 409."""
    suffix = uuid.uuid4().hex[:6]
    await sign_up(client, nickname=theirs + suffix)
    me = await sign_up(client)
    auth = bearer((await log_in(client, me["email"]))["access_token"])

    response = await client.patch(
        "/api/members/me", json={"nickname": clash + suffix.upper()}, headers=auth
    )
    assert response.status_code == 409, response.text

    # one's own nickname in another case is one's own: allowed, and shown as typed
    own = me["nickname"].upper()
    renamed = await client.patch("/api/members/me", json={"nickname": own}, headers=auth)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["nickname"] == own


async def test_a_long_decomposed_hangul_nickname_is_accepted(client: httpx.AsyncClient) -> None:
    """Text identity: 18 syllables and 2 digits typed as 56 code points (decomposed jamo) are
    20 characters, not a 422."""
    nickname = "한글" * 9 + uuid.uuid4().hex[:2]
    created = await sign_up(client, nickname=nfd(nickname))
    assert created["nickname"] == nickname
