"""Keyboard-only use of the sign-up form (WCAG 2.1.1 Keyboard, 2.4.3 Focus Order, 2.4.7 Focus Visible): skip link, Tab order, a visible focus, Enter submits."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import Screens
from tests.e2e.flows import GatewayApi, Person, form_with

pytestmark = pytest.mark.e2e

#: What the focused element is: its tag, name (form fields), type and box (the focus order
#: must follow the reading order); and whether the focus can be seen (an outline or a shadow).
FOCUSED = """() => {
  const e = document.activeElement;
  const style = getComputedStyle(e);
  const box = e.getBoundingClientRect();
  return {
    tag: e.tagName.toLowerCase(), name: e.getAttribute('name'), type: e.getAttribute('type'),
    id: e.id, text: (e.innerText || '').trim(), top: box.top, left: box.left,
    outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== 'none',
  };
}"""


async def focused(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = await page.evaluate(FOCUSED)
    return found


async def test_the_sign_up_form_works_with_the_keyboard_alone(
    page: Page, api: GatewayApi, screens: Screens
) -> None:
    person = Person.new("keys")
    await page.goto("/signup")
    form = form_with(page, "nickname")
    # the form's fields in reading order, as a sighted visitor sees them
    fields: list[str] = await form.evaluate(
        "f => [...f.elements].filter(e => e.type !== 'hidden' && e.name).map(e => e.name)"
    )
    assert fields[:3] == ["email", "nickname", "password"]

    # the first Tab reaches the skip link, visibly; Enter on it moves on to the content
    await page.keyboard.press("Tab")
    skip = await focused(page)
    assert skip["tag"] == "a", skip
    assert skip["outline"] or skip["shadow"], f"no visible focus on the skip link: {skip}"
    await expect(page.locator("a.skip-link")).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()

    # Tab walks the fields in reading order, each focus visible, and the visitor types
    typed = {"email": person.email, "nickname": person.nickname, "password": person.password}
    reached: list[str] = []
    previous_top = -1.0
    while len(reached) < len(fields):
        await page.keyboard.press("Tab")
        now = await focused(page)
        if now["tag"] not in ("input", "textarea", "select"):
            continue  # a link or hint between the fields
        assert now["outline"] or now["shadow"], f"no visible focus on {now}"
        assert now["top"] >= previous_top, f"focus moved back up the page to {now}"
        previous_top = now["top"]
        reached.append(now["name"])
        await page.keyboard.type(typed.get(now["name"], ""))
        if len(reached) == 1:
            await screens.shot(page, "signup-keyboard-focus")
    assert reached == fields

    # the next stop is the submit button, then Enter in a field sends the form
    await page.keyboard.press("Tab")
    button = await focused(page)
    assert button["tag"] == "button", button
    assert button["type"] in (None, "submit"), button
    assert button["outline"] or button["shadow"], f"no visible focus on {button}"
    await page.keyboard.press("Shift+Tab")
    assert (await focused(page))["name"] == fields[-1]
    await page.keyboard.press("Enter")

    # the account exists: the page left the form, and the API lets the member in
    await expect(page).not_to_have_url(re.compile(r"/signup$"))
    assert (await api.me(await api.token(person)))["nickname"] == person.nickname
