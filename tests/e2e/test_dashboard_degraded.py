"""API composition with graceful degradation, seen on my page: with qna down, the gateway's dashboard names the missing part and the page shows the rest."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import Screens
from tests.e2e.flows import GatewayApi, Person, reload_until, sign_up_and_log_in
from tests.system.saga.stack import Stack

pytestmark = pytest.mark.e2e

UNAVAILABLE = re.compile("temporarily unavailable", re.IGNORECASE)


async def test_my_page_says_which_part_is_missing_while_qna_is_down(
    page: Page, api: GatewayApi, stack: Stack, screens: Screens
) -> None:
    person = Person.new("dash")
    await sign_up_and_log_in(page, person)
    token = await api.token(person)
    title = f"Where do read models live? {uuid.uuid4().hex[:6]}"
    await api.post("/api/questions", token, {"title": title, "content": "asked", "bounty": 0})
    main = page.locator("main")
    await page.goto("/me")
    # everything is there once qna's list has the question (its read model lags the write)
    await reload_until(page, main.get_by_text(title))
    await expect(main.get_by_text(person.nickname).first).to_be_visible()
    notice = main.get_by_text(UNAVAILABLE)
    await expect(notice).to_have_count(0)
    await screens.shot(page, "my-page", docs=True)

    stack.kill("qna-api")
    try:
        await reload_until(page, notice)
        # the notice names the questions; profile, points and posts are still shown
        await expect(main.get_by_text(title)).to_have_count(0)
        await expect(notice.first).to_contain_text(re.compile("question", re.I))
        await expect(main.get_by_text(person.nickname).first).to_be_visible()
        await expect(main.get_by_text("100").first).to_be_visible()
        await screens.shot(page, "my-page-degraded", docs=True)
    finally:
        await asyncio.to_thread(stack.start, "qna-api")

    # back up: the gateway's breaker closes again and the part returns
    await reload_until(page, main.get_by_text(title))
    await expect(notice).to_have_count(0)
