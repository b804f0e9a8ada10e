"""End-to-end browser tests' fixtures: the whole stack behind the gateway, and headless Chromium driven through Playwright's async API.

One stack for the session (``running_stack(web=True)``: every service, the saga orchestrator,
the gateway and the ``web`` front end as real processes), one browser for the session, and a
fresh browser context (cookies, locale, 1280x800 viewport) per page a test opens.

Why the async API and our own fixtures, not pytest-playwright: that plugin's synchronous
session fixtures leave an event loop running, and every pytest-asyncio test collected after
them (this repository runs one session-wide loop) then fails with "Runner.run() cannot be
called from a running event loop".

Chromium is Debian's (``make browser``), launched by its path: nothing is downloaded. A
missing browser fails the tests, never skips them, so a machine without it cannot pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.e2e.flows import GatewayApi
from tests.support.infra import REPO, Infra
from tests.system.saga.stack import Stack, running_stack

#: Fault flags are global Redis keys: the browser tests keep theirs in a database of their own
#: (the saga system tests use 12, the fuzz stack 13).
E2E_REDIS_DB = 14
#: Debian's real binary; /usr/bin/chromium is a wrapper script that adds nothing here.
DEFAULT_CHROMIUM = "/usr/lib/chromium/chromium"
#: Every wait is on a condition, with room for two shared cores, a saga and a read model's lag.
TIMEOUT_MS = 30_000
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
#: Where every test's screenshots go (git-ignored): .local/e2e/<test>/NN-name.png.
SHOTS_DIR = REPO / ".local" / "e2e"
#: E2E_SCREENSHOTS=docs/screenshots also writes the README's screens there as <name>.png.
DOCS_SHOTS_ENV = "E2E_SCREENSHOTS"

expect.set_options(timeout=TIMEOUT_MS)


def chromium_executable() -> str:
    """``CHROMIUM_EXECUTABLE`` or Debian's binary; fails the test when there is none."""
    executable = os.environ.get("CHROMIUM_EXECUTABLE") or DEFAULT_CHROMIUM
    if not Path(executable).is_file():
        pytest.fail(
            f"no Chromium at {executable}: run `make browser` "
            "(or set CHROMIUM_EXECUTABLE to a Chromium binary)",
            pytrace=False,
        )
    return executable


@pytest.fixture(scope="session")
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    """Member, board, qna, saga (api + worker each), the gateway and web, started once."""
    async with running_stack(infra, web=True, redis_db=E2E_REDIS_DB, step_timeout=60) as started:
        yield started


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    """The product's front door: the gateway, which serves the pages at ``/``."""
    return stack.gateway_url


@pytest.fixture(scope="session")
async def api(base_url: str) -> AsyncIterator[GatewayApi]:
    """The gateway's public API, to check what the pages did."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield GatewayApi(http)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium for the whole session (about 0.5 s to launch)."""
    executable = chromium_executable()
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        except Exception as error:
            pytest.fail(f"Chromium at {executable} did not start ({error}): run `make browser`")
        yield launched
        await launched.close()


@dataclass
class Screens:
    """Full-page screenshots of one test, numbered in the order they were taken."""

    directory: Path
    docs_directory: Path | None
    taken: list[Path] = field(default_factory=list)

    async def shot(self, page: Page, name: str, *, docs: bool = False) -> Path:
        """Save ``page`` as ``<directory>/NN-<name>.png``; with ``docs`` (one of the README's
        screens) also as ``<E2E_SCREENSHOTS>/<name>.png`` when that variable is set."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        if docs and self.docs_directory is not None:
            self.docs_directory.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(self.docs_directory / f"{name}.png"), full_page=True)
        return path


@pytest.fixture
def screens(request: pytest.FixtureRequest) -> Screens:
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    docs = os.environ.get(DOCS_SHOTS_ENV)
    return Screens(SHOTS_DIR / test, REPO / docs if docs else None)


#: ``await open_page(locale="ko-KR")``: a page in a fresh context (its own cookies: one visitor).
OpenPage = Callable[..., Awaitable[Page]]


async def _accept(dialog: Dialog) -> None:
    await dialog.accept()


@pytest.fixture
async def open_page(browser: Browser, base_url: str) -> AsyncIterator[OpenPage]:
    """Opens pages, each in a context of its own (a separate visitor: its own cookie jar),
    with ``locale`` (which sets Accept-Language) and the 1280x800 viewport; all are closed
    after the test."""
    contexts: list[BrowserContext] = []

    async def open_one(locale: str = "en-US") -> Page:
        context = await browser.new_context(base_url=base_url, locale=locale, viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = await context.new_page()
        # the visitor answers "OK" to every confirmation (data-confirm buttons); Playwright
        # would otherwise dismiss it, and the form would never be sent
        page.on("dialog", _accept)
        return page

    yield open_one
    for context in contexts:
        await context.close()


@pytest.fixture
async def page(open_page: OpenPage) -> Page:
    """One English-speaking visitor's page."""
    return await open_page()
