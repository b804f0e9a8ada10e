"""The answer-acceptance saga's compensation in the browser: a bounty larger than the asker's balance at accept time ends COMPENSATED, with the reason shown, and nothing moved."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage, Screens
from tests.e2e.flows import (
    SIGNUP_POINTS,
    GatewayApi,
    Person,
    accept,
    answer,
    ask,
    expect_saga_ends,
    sign_up_and_log_in,
)

pytestmark = pytest.mark.e2e


async def test_an_unpayable_bounty_is_compensated_and_the_page_says_why(
    open_page: OpenPage, api: GatewayApi, screens: Screens
) -> None:
    asker, answerer = Person.new("asker"), Person.new("helper")
    asker_page, answerer_page = await open_page(), await open_page()
    await sign_up_and_log_in(asker_page, asker)
    await sign_up_and_log_in(answerer_page, answerer)
    bounty = SIGNUP_POINTS * 5  # asking is free: the balance is checked when accepting
    question_id = await ask(asker_page, "Worth more than I have?", "A big bounty.", bounty)
    await answer(answerer_page, question_id, "Only the pivot can tell.")

    await accept(asker_page, question_id, "Only the pivot can tell.")

    await expect_saga_ends(asker_page, "COMPENSATED")
    main = asker_page.locator("main")
    # the reason is the failed pivot's: the points could not be transferred
    await expect(main).to_contain_text("transfer-points")
    await screens.shot(asker_page, "saga-acceptance-compensated", docs=True)
    # the question is open again, no answer accepted, and no point moved
    await asker_page.goto(f"/questions/{question_id}")
    await expect(asker_page.locator(".answer.accepted")).to_have_count(0)
    await expect(
        asker_page.locator(".answer").get_by_role("button", name=re.compile("accept", re.I))
    ).to_have_count(1)
    assert (await api.me(await api.token(asker)))["points"] == SIGNUP_POINTS
    assert (await api.me(await api.token(answerer)))["points"] == SIGNUP_POINTS
