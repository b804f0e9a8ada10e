"""What a visitor does on the pages (page-object helpers for the browser tests), and the API checks that look behind them.

Form fields are found by their ``name`` (the API's field names, stable across languages and
wording); links and buttons by their accessible role and text, as a visitor finds them.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.async_api import Locator, Page, Response, expect

#: The seeded board everyone may write on (board's first migration); its name is data, so it
#: reads the same in both languages.
FREE_BOARD = "자유게시판"
#: A new member's points (member's SIGNUP_POINTS).
SIGNUP_POINTS = 100


@dataclass(frozen=True)
class Person:
    """A visitor who signs up: email, password and nickname (unique per test run)."""

    email: str
    password: str
    nickname: str

    @classmethod
    def new(cls, name: str) -> Person:
        suffix = uuid.uuid4().hex[:6]
        return cls(f"{name}.{suffix}@example.com", "correct horse 42", f"{name}{suffix}")


def form_with(page: Page, field: str) -> Locator:
    """The form on the page that has a field named ``field``."""
    return page.locator("main form").filter(has=page.locator(f"[name='{field}']"))


async def submit(form: Locator) -> None:
    await form.locator("button[type=submit], input[type=submit]").last.click()


async def sign_up(page: Page, person: Person) -> None:
    """Fill and send the sign-up form; ends on the page it leads to."""
    await page.goto("/signup")
    form = form_with(page, "nickname")
    await form.locator("[name=email]").fill(person.email)
    await form.locator("[name=nickname]").fill(person.nickname)
    for password in await form.locator("input[type=password]").all():
        await password.fill(person.password)
    await submit(form)
    await expect(page).not_to_have_url(re.compile(r"/signup(\?|$)"))


async def log_in(page: Page, person: Person) -> None:
    """Log in through the form; ends signed in (the nickname shows in the header)."""
    await page.goto("/login")
    form = form_with(page, "email")
    await form.locator("[name=email]").fill(person.email)
    await form.locator("[name=password]").fill(person.password)
    await submit(form)
    await expect_signed_in(page, person)


async def sign_up_and_log_in(page: Page, person: Person) -> None:
    """Sign up, then log in unless the sign-up already did."""
    await sign_up(page, person)
    if await page.locator("header").get_by_text(person.nickname, exact=True).count() == 0:
        await log_in(page, person)
    await expect_signed_in(page, person)


async def expect_signed_in(page: Page, person: Person) -> None:
    await expect(page.locator("header").get_by_text(person.nickname, exact=True)).to_be_visible()


async def expect_signed_out(page: Page) -> None:
    header = page.locator("header")
    await expect(header.locator("a[href='/login']")).to_be_visible()
    await expect(header.locator("form[action='/logout']")).to_have_count(0)


async def expect_saga_ends(page: Page, status: str) -> None:
    """Wait until the live saga view on ``page`` shows ``status`` (COMPLETED, COMPENSATED...)."""
    await expect(page.locator(".saga-state").first).to_have_attribute("data-status", status)


class GatewayApi:
    """The gateway's public API, to check from behind the pages what a page claims."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def token(self, person: Person) -> str:
        response = await self.http.post(
            "/api/auth/login", json={"email": person.email, "password": person.password}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def get(self, path: str, token: str | None = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.get(path, headers=headers, params=params)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def post(self, path: str, token: str, body: dict[str, Any]) -> Any:
        response = await self.http.post(
            path, headers={"Authorization": f"Bearer {token}"}, json=body
        )
        assert response.is_success, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def me(self, token: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.get("/api/members/me", token)
        return body

    async def posts_by(self, member_id: str) -> list[dict[str, Any]]:
        """The member's posts in board's list (its read model: eventually consistent)."""
        body = await self.get("/api/posts", author_id=member_id, size=50)
        items: list[dict[str, Any]] = body["items"]
        return items


async def open_free_board(page: Page) -> None:
    await page.goto("/boards")
    await page.get_by_role("link", name=FREE_BOARD).first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(FREE_BOARD)


async def open_post_form(page: Page) -> Locator:
    """From a board's list, the write form."""
    await page.get_by_role("link", name=re.compile("write", re.IGNORECASE)).first.click()
    form = form_with(page, "title")
    await expect(form).to_be_visible()
    return form


async def write_post(page: Page, title: str, content: str) -> str:
    """Write a post on the free board; ends on the post's page and returns its id."""
    await open_free_board(page)
    form = await open_post_form(page)
    await form.locator("[name=title]").fill(title)
    await form.locator("[name=content]").fill(content)
    await submit(form)
    await expect(page).to_have_url(re.compile(r"/posts/[0-9a-f-]{36}"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    return page_id(page, "posts")


def page_id(page: Page, collection: str) -> str:
    """The id in ``/<collection>/<id>`` of the page's URL."""
    found = re.search(rf"/{collection}/([0-9a-f-]{{36}})", page.url)
    assert found, f"no /{collection}/<id> in {page.url}"
    return found.group(1)


async def form_fields(form: Locator) -> dict[str, str]:
    """Every named field of ``form`` with its current value (hidden ones included)."""
    fields: dict[str, str] = await form.evaluate(
        "f => Object.fromEntries([...new FormData(f)].filter(([, v]) => typeof v === 'string'))"
    )
    return fields


async def form_action(form: Locator) -> str:
    """The absolute URL ``form`` posts to."""
    action: str = await form.evaluate("f => f.action")
    return action


async def reload_until(
    page: Page, locator: Locator, *, gone: bool = False, timeout: float = 60
) -> None:
    """Reload ``page`` until ``locator`` shows (or, with ``gone``, until it has gone): for what
    changes behind a page that does not update itself (a read model's lag, a breaker that
    closes again). Each look waits up to 2 s for the condition."""
    deadline = time.monotonic() + timeout
    while True:
        await page.reload()
        try:
            if gone:
                await expect(locator).to_have_count(0, timeout=2_000)
            else:
                await expect(locator.first).to_be_visible(timeout=2_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


async def comment(page: Page, text: str) -> None:
    """Add a comment on the post or question shown."""
    form = page.locator("form#comment-form")
    await form.locator("[name=content]").fill(text)
    await submit(form)
    await expect(page.locator(".comment").get_by_text(text, exact=True)).to_be_visible()


async def ask(page: Page, title: str, content: str, bounty: int) -> str:
    """Ask a question with a bounty; ends on the question's page and returns its id."""
    await page.goto("/questions")
    await page.get_by_role("link", name=re.compile("ask", re.IGNORECASE)).first.click()
    form = form_with(page, "bounty")
    await form.locator("[name=title]").fill(title)
    await form.locator("[name=content]").fill(content)
    await form.locator("[name=bounty]").fill(str(bounty))
    await submit(form)
    await expect(page).to_have_url(re.compile(r"/questions/[0-9a-f-]{36}"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    return page_id(page, "questions")


async def answer(page: Page, question_id: str, text: str) -> None:
    """Answer the question from its page."""
    await page.goto(f"/questions/{question_id}")
    form = page.locator("form#answer-form")
    await form.locator("[name=content]").fill(text)
    await submit(form)
    await expect(page.locator(".answer").get_by_text(text, exact=True)).to_be_visible()


async def accept(page: Page, question_id: str, answer_text: str) -> str:
    """Accept the answer reading ``answer_text`` on the question's page (confirming); ends on
    the live saga view and returns the saga's id."""
    await page.goto(f"/questions/{question_id}")
    the_answer = page.locator(".answer").filter(has_text=answer_text)
    async with page.expect_response(_saga_page) as shown:
        await the_answer.get_by_role("button", name=re.compile("accept", re.IGNORECASE)).click()
    return _saga_id((await shown.value).url)


async def withdraw(page: Page) -> str:
    """Withdraw from the account page, ticking the confirmation and confirming the dialog;
    returns the id of the saga the live view follows (which, with scripts on, moves on to
    the home page once the account is gone)."""
    await page.goto("/account")
    await page.locator("main").get_by_role("link", name=re.compile("withdraw", re.I)).click()
    form = page.locator("main form").filter(has=page.locator("[name=confirm]"))
    await form.locator("[name=confirm]").check()
    async with page.expect_response(_saga_page) as shown:
        await submit(form)
    return _saga_id((await shown.value).url)


def _saga_page(response: Response) -> bool:
    return response.request.method == "GET" and bool(_SAGA_PAGE.search(response.url))


def _saga_id(url: str) -> str:
    found = _SAGA_PAGE.search(url)
    assert found, url
    return found.group(1)


_SAGA_PAGE = re.compile(r"/sagas/([0-9a-f-]{36})(\?|$)")
