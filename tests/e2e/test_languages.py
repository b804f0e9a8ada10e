"""Internationalization in the browser: the page's language from Accept-Language, the switch on the page, and the cookie that remembers it."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import OpenPage, Screens

pytestmark = pytest.mark.e2e

HEADLINE = {
    "ko": "마이크로서비스로 만든 게시판과 Q&A",
    "en": "Boards and Q&A, built as microservices",
}


async def expect_language(page: Page, code: str) -> None:
    await expect(page.locator("html")).to_have_attribute("lang", code)
    await expect(page.get_by_role("heading", level=1)).to_have_text(HEADLINE[code])


@pytest.mark.parametrize("locale", ["ko-KR", "en-US"])
async def test_the_browsers_language_picks_the_pages_language(
    open_page: OpenPage, screens: Screens, locale: str
) -> None:
    page = await open_page(locale=locale)
    code = locale.split("-")[0]

    response = await page.goto("/")

    assert response is not None
    assert response.status == 200
    assert response.headers["content-language"] == code
    await expect_language(page, code)
    await screens.shot(page, f"home-{code}", docs=True)


async def test_a_language_the_site_lacks_falls_back_to_korean(open_page: OpenPage) -> None:
    page = await open_page(locale="fr-FR")

    await page.goto("/")

    await expect_language(page, "ko")


async def test_the_switch_changes_the_language_stays_on_the_page_and_is_remembered(
    open_page: OpenPage, screens: Screens
) -> None:
    page = await open_page(locale="en-US")
    await page.goto("/boards")
    await expect(page.locator("html")).to_have_attribute("lang", "en")

    await page.get_by_role("navigation", name="Language").get_by_role("link", name="한국어").click()

    # back on the page the switch was on, now in Korean, and the choice kept in a cookie
    await expect(page).to_have_url(re.compile(r"^http://[^/]+/boards$"))
    await expect(page.locator("html")).to_have_attribute("lang", "ko")
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    assert cookies["lang"]["value"] == "ko"
    assert cookies["lang"]["path"] == "/"
    await screens.shot(page, "boards-after-switch")

    # the cookie outranks the browser's Accept-Language on every later page
    await page.goto("/")
    await expect_language(page, "ko")

    # and the switch works back the other way
    await page.get_by_role("navigation", name="언어").get_by_role("link", name="English").click()
    await expect_language(page, "en")
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    assert cookies["lang"]["value"] == "en"
