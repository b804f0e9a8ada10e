"""A whole visit in the browser: two members sign up, write, comment, ask with a bounty, answer, accept (the answer-acceptance saga), see their points, and withdraw (the member-withdrawal saga)."""

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
    comment,
    expect_saga_ends,
    expect_signed_out,
    log_in,
    open_free_board,
    reload_until,
    sign_up,
    withdraw,
    write_post,
)

pytestmark = pytest.mark.e2e

BOUNTY = 30


async def test_two_members_from_sign_up_to_withdrawal(
    open_page: OpenPage, api: GatewayApi, screens: Screens
) -> None:
    asker, answerer = Person.new("minji"), Person.new("junho")
    asker_page, answerer_page = await open_page(), await open_page()

    # sign up and log in, each in a browser of their own
    await asker_page.goto("/signup")
    await screens.shot(asker_page, "signup")
    for page, person in ((asker_page, asker), (answerer_page, answerer)):
        await sign_up(page, person)
        await log_in(page, person)

    # a post and a comment on the free board
    title = "Outbox or two-phase commit?"
    await write_post(asker_page, title, "Why does every service here write an outbox row?")
    await comment(asker_page, "Because a broker and a database share no transaction.")
    await screens.shot(asker_page, "post", docs=True)
    # the list is a read model: the post shows once the projection has it
    await open_free_board(asker_page)
    await reload_until(asker_page, asker_page.get_by_role("link", name=title))
    await screens.shot(asker_page, "board", docs=True)

    # a question with a bounty, answered from the other browser
    question_id = await ask(asker_page, "How do sagas undo a step?", "Say, a failed pivot.", BOUNTY)
    answer_text = "A compensating command for every compensatable step, in reverse order."
    await answer(answerer_page, question_id, answer_text)

    # accepting starts the answer-acceptance saga; its page follows it to the end
    await accept(asker_page, question_id, answer_text)
    await expect_saga_ends(asker_page, "COMPLETED")
    await screens.shot(asker_page, "saga-acceptance-completed", docs=True)
    await asker_page.goto(f"/questions/{question_id}")
    accepted = asker_page.locator(".answer.accepted")
    await expect(accepted).to_contain_text(answer_text)
    await screens.shot(asker_page, "question-resolved", docs=True)

    # the bounty moved: each member's page shows it (the member record, not a read model)
    for page, points in (
        (asker_page, SIGNUP_POINTS - BOUNTY),
        (answerer_page, SIGNUP_POINTS + BOUNTY),
    ):
        await page.goto("/me")
        await expect(page.locator("[data-part=member] .points")).to_have_text(str(points))
    await screens.shot(asker_page, "my-page", docs=True)
    assert (await api.me(await api.token(asker)))["points"] == SIGNUP_POINTS - BOUNTY
    assert (await api.me(await api.token(answerer)))["points"] == SIGNUP_POINTS + BOUNTY

    # withdrawal: the member-withdrawal saga; once it completed the browser is logged out
    await answerer_page.goto("/account/withdraw")
    await screens.shot(answerer_page, "withdraw", docs=True)
    await withdraw(answerer_page)
    await expect(answerer_page).to_have_url(re.compile(r"/\?notice=withdrawn$"))
    await expect_signed_out(answerer_page)
    await screens.shot(answerer_page, "withdrawn")
    response = await api.http.post(
        "/api/auth/login", json={"email": answerer.email, "password": answerer.password}
    )
    assert response.status_code == 401, response.text
