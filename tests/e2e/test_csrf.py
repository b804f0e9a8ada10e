"""Cross-site request forgery defence (synchronizer token): a form POST carrying the session cookie but not the session's token is refused before any API call."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage, Screens
from tests.e2e.flows import (
    GatewayApi,
    Person,
    form_action,
    form_fields,
    form_with,
    open_free_board,
    open_post_form,
    sign_up_and_log_in,
    submit,
)
from tests.support.infra import wait_for

pytestmark = pytest.mark.e2e

EXPIRED = "This form has expired"
#: Requests made outside the page carry no Accept-Language of the context's locale.
ENGLISH = {"Accept-Language": "en-US"}


async def test_a_post_without_the_sessions_csrf_token_is_refused_and_creates_nothing(
    open_page: OpenPage, api: GatewayApi, screens: Screens
) -> None:
    # another visitor's valid token, for this session it must be worth nothing
    stranger = await open_page()
    await stranger.goto("/login")
    strangers_token = (await form_fields(form_with(stranger, "email")))["csrf_token"]
    page = await open_page()
    person = Person.new("csrf")
    await sign_up_and_log_in(page, person)
    member_id = (await api.me(await api.token(person)))["id"]
    await open_free_board(page)
    form = await open_post_form(page)
    url, fields = await form_action(form), await form_fields(form)
    assert fields["csrf_token"], "the write form carries the session's CSRF token"
    assert fields["csrf_token"] != strangers_token
    forged_title = f"forged {uuid.uuid4().hex[:8]}"

    # the same request a hostile page could make the browser send: the cookie rides along
    attempts: dict[str, dict[str, str | float | bool]] = {
        "no token": {k: v for k, v in fields.items() if k != "csrf_token"},
        "a wrong token": {**fields, "csrf_token": uuid.uuid4().hex},
        "another session's token": {**fields, "csrf_token": strangers_token},
    }
    for attempt, data in attempts.items():
        data.update(title=forged_title, content="sent without the form's token")
        response = await page.request.post(url, form=data, headers=ENGLISH, max_redirects=0)
        assert response.status == 403, f"{attempt}: {response.status}"
        assert EXPIRED in await response.text(), attempt
    # the right token from another site: refused by the Origin check
    response = await page.request.post(
        url,
        form={**fields, "title": forged_title, "content": "from another origin"},
        headers={**ENGLISH, "Origin": "https://attacker.example"},
        max_redirects=0,
    )
    assert response.status == 403, f"foreign Origin: {response.status}"

    # in the browser: a form whose token was tampered with shows the readable 403 page
    await form.locator("[name=csrf_token]").evaluate("field => { field.value = 'tampered'; }")
    await form.locator("[name=title]").fill(forged_title)
    await form.locator("[name=content]").fill("tampered in the page")
    async with page.expect_response(lambda r: r.request.method == "POST") as refused:
        await submit(form)
    assert (await refused.value).status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text(EXPIRED)
    await screens.shot(page, "csrf-refused")

    # the session survives the refusal, and the form with its real token goes through; once
    # board's list shows that post, it would show the forged ones too: there are none
    await open_free_board(page)
    form = await open_post_form(page)
    control_title = f"sent with the token {uuid.uuid4().hex[:8]}"
    await form.locator("[name=title]").fill(control_title)
    await form.locator("[name=content]").fill("the form as the page rendered it")
    await submit(form)
    await expect(page.get_by_role("heading", level=1)).to_have_text(control_title)

    async def listed() -> list[str] | None:
        titles = [post["title"] for post in await api.posts_by(member_id)]
        return titles if control_title in titles else None

    assert await wait_for(listed, timeout=30) == [control_title]
