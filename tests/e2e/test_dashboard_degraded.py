"""API composition with graceful degradation, seen on my page: with qna down, the gateway's dashboard names the missing part and the page shows the rest."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import Screens
from tests.e2e.flows import (
    SIGNUP_POINTS,
    GatewayApi,
    Person,
    reload_until,
    sign_up_and_log_in,
)
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
    questions = main.locator("[data-part=recent_questions]")
    await reload_until(page, questions.get_by_text(title))
    degraded = main.locator("[data-degraded]")
    await expect(degraded).to_have_count(0)
    await expect(main.get_by_text(UNAVAILABLE)).to_have_count(0)

    stack.kill("qna-api")
    try:
        await reload_until(page, questions.and_(degraded))
        # only the questions are missing, said in words; profile, points and activity stay
        await expect(degraded).to_have_count(1)
        await expect(questions).to_contain_text(UNAVAILABLE)
        await expect(questions.get_by_text(title)).to_have_count(0)
        summary = main.get_by_role("status").filter(has_text=re.compile("question", re.I))
        await expect(summary).to_have_count(1)
        member = main.locator("[data-part=member]")
        await expect(member.locator(".nickname")).to_have_text(person.nickname)
        await expect(member.locator(".points")).to_have_text(str(SIGNUP_POINTS))
        await expect(main.locator("[data-part=activity]")).to_be_visible()
        await screens.shot(page, "my-page-degraded", docs=True)
    finally:
        await asyncio.to_thread(stack.start, "qna-api")

    # qna is back: once the gateway's breaker lets calls through again, so is the part
    await reload_until(page, questions.get_by_text(title), timeout=90)
    await expect(degraded).to_have_count(0)
