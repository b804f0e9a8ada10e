"""Home page and language switch (the server-rendered UI's entry point)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from web.entrypoints.rendering import Renderer
from web.i18n import LANG_COOKIE, LANG_COOKIE_SECONDS, LOCALES

router = APIRouter()


def safe_next(target: str | None, fallback: str = "/") -> str:
    """A redirect target that stays on this site: a path starting with one ``/`` (never
    ``//host`` or ``/\\host``, which browsers read as another origin); else ``fallback``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return fallback
    if any(ch in target for ch in "\r\n\t\x00"):
        return fallback
    return target


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, renderer: Renderer) -> HTMLResponse:
    return renderer.render(request, "home.html")


@router.get("/lang/{code}")
async def switch_language(
    code: str, next: Annotated[str | None, Query(max_length=2048)] = None
) -> RedirectResponse:
    """Remember the visitor's language and go back to the page the switch was on."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in LOCALES:
        response.set_cookie(
            LANG_COOKIE, code, max_age=LANG_COOKIE_SECONDS, samesite="lax", path="/"
        )
    return response
