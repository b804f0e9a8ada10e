"""Backend-for-Frontend sessions through the gateway: each browser has a session of its own, and signing in gives it a new one (no session fixation)."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import OpenPage
from tests.e2e.flows import Person, expect_signed_out, form_fields, form_with, log_in, sign_up

pytestmark = pytest.mark.e2e

SESSION_COOKIE = "msa_session"


async def session_cookie(page: Page) -> str:
    """The value of the page's session cookie (``""`` when it has none)."""
    for cookie in await page.context.cookies():
        if cookie.get("name") == SESSION_COOKIE:
            return cookie.get("value", "")
    return ""


async def csrf_token(page: Page) -> str:
    await page.goto("/login")
    return (await form_fields(form_with(page, "email")))["csrf_token"]


async def test_each_browser_has_its_own_session_and_sign_in_renews_it(
    open_page: OpenPage, base_url: str
) -> None:
    member, stranger, attacker = await open_page(), await open_page(), await open_page()
    person = Person.new("own")
    await sign_up(member, person)
    guest_token = await csrf_token(member)
    guest_cookie = await session_cookie(member)
    assert guest_cookie

    await log_in(member, person)

    signed_in_cookie = await session_cookie(member)
    assert signed_in_cookie
    assert signed_in_cookie != guest_cookie
    # a browser that never signed in is a guest, with a session and a token of its own
    await stranger.goto("/")
    await expect(stranger.locator("header")).not_to_contain_text(person.nickname)
    await expect_signed_out(stranger)
    strangers_token = await csrf_token(stranger)
    assert await session_cookie(stranger) not in ("", guest_cookie, signed_in_cookie)
    assert strangers_token != guest_token
    # the cookie planted before the sign-in (session fixation) is worth nothing now
    await attacker.context.add_cookies(
        [{"name": SESSION_COOKIE, "value": guest_cookie, "url": base_url}]
    )
    await attacker.goto("/")
    await expect_signed_out(attacker)
    # and no script on the page can read the session cookie (HttpOnly)
    assert await member.evaluate("document.cookie.includes('msa_session')") is False
