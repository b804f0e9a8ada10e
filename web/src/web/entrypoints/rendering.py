"""Server-side rendering: Jinja2 templates in the visitor's language, HTML error pages instead of problem documents."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from babel.support import Translations
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from opentelemetry import trace
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.logging import get_logger
from web.config import Settings
from web.i18n import LANG_COOKIE, LOCALES, LocaleChoice, choose_locale

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
log = get_logger(__name__)
#: What a browser gets when even the error page cannot be rendered (a broken base template).
BARE_500 = (
    "<!doctype html><html><head><meta charset=utf-8><title>500</title></head><body>"
    '<h1>Something went wrong on our side</h1><p><a href="/">Home</a></p></body></html>'
)


class Pages:
    """One Jinja2 environment per language, each with its gettext catalog installed
    (``{% trans %}`` and ``_()`` in templates); rendering picks the request's language.

    Every template sees ``request``, ``locale`` (a ``LocaleChoice``), ``locales``,
    ``session`` (``request.state.session`` when the session layer set it, else ``None``),
    ``csrf_token`` (the session's, else ``""``), ``settings``, ``lang_url(code)`` and ``flash``
    (``request.state.flash``: a ``web.sessions.Flash`` set by the session layer, or ``None``)."""

    def __init__(self, settings: Settings, catalogs: dict[str, Translations]) -> None:
        self.settings = settings
        self.catalogs = catalogs
        loader = FileSystemLoader(TEMPLATES)
        self._envs: dict[str, Environment] = {}
        for code, translations in catalogs.items():
            env = Environment(
                loader=loader,
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
            self._envs[code] = env

    def locale(self, request: Request) -> LocaleChoice:
        """The request's language (cached on ``request.state``)."""
        chosen: LocaleChoice | None = getattr(request.state, "locale", None)
        if chosen is None:
            chosen = choose_locale(
                request.cookies.get(LANG_COOKIE),
                request.headers.get("accept-language"),
                self.settings.DEFAULT_LOCALE,
            )
            request.state.locale = chosen
        return chosen

    def gettext(self, request: Request, message: str) -> str:
        """``message`` translated into the request's language (for flashes and form errors)."""
        return str(self.catalogs[self.locale(request).code].gettext(message))

    def translator(self, request: Request) -> Callable[[str], str]:
        """``gettext`` bound to this request's language, for ``forms.from_api_error``."""
        return lambda message: self.gettext(request, message)

    def labels(self, request: Request, labels: Mapping[str, str]) -> dict[str, str]:
        """``labels`` (code -> an ``N_``-marked English label) translated into the request's
        language, for a template to look data up in: data never goes through the template's
        ``_()``, which would format it with ``%`` and mark it safe (unescaped)."""
        return {code: self.gettext(request, label) for code, label in labels.items()}

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any] | None = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        chosen = self.locale(request)
        session = getattr(request.state, "session", None)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        values: dict[str, Any] = {
            "request": request,
            "locale": chosen,
            "locales": LOCALES,
            "session": session,
            "csrf_token": getattr(session, "csrf", "") if session is not None else "",
            "settings": self.settings,
            "lang_url": lambda code: f"/lang/{code}?next={quote(here, safe='')}",
            "here": here,
            # the session layer's one-shot message (web.entrypoints.deps), if any
            "flash": getattr(request.state, "flash", None),
        }
        values.update(context or {})
        html = self._envs[chosen.code].get_template(template).render(values)
        response = HTMLResponse(html, status_code=status, headers=headers)
        # a page in a language the header did not pick must not be cached for another visitor
        response.headers["Vary"] = "Accept-Language, Cookie"
        response.headers["Content-Language"] = chosen.code
        return response


def pages(request: Request) -> Pages:
    """The app's ``Pages`` (set by bootstrap)."""
    found: Pages = request.app.state.pages
    return found


#: The dependency every page declares to render: ``renderer: Renderer``.
Renderer = Annotated[Pages, Depends(pages)]


def install_error_pages(app: FastAPI, renderer: Pages) -> None:
    """Answer 4xx/5xx raised by routing or validation with an HTML page in the visitor's
    language: a browser shows a page, never a problem document. ``/healthz``, ``/readyz`` and
    ``/metrics`` keep their own answers."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return renderer.render(
            request,
            "error.html",
            {"status": exc.status_code},
            status=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def invalid_request(request: Request, exc: Exception) -> Response:
        # a hand-edited query string (?page=abc): the link is wrong, not the server
        return renderer.render(request, "error.html", {"status": 400}, status=400)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)


#: Paths whose answers are not pages: probes and the metrics scrape keep the chassis' own.
NOT_PAGES = ("/healthz", "/readyz", "/metrics")
#: Headers of a refused answer the HTML page keeps (``Allow`` of a 405, ``Retry-After`` of a
#: 413/429/503, a session cookie set on the way); the body's own are the page's.
_BODY_HEADERS = frozenset({b"content-type", b"content-length", b"content-language", b"vary"})


class ErrorPageMiddleware:
    """Every error web answers on its own is an HTML page in the visitor's language, never the
    chassis' problem document: a browser shows a page.

    - A problem document from inside (``application/problem+json``: the chassis' input guard's
      422 for a NUL or a lone surrogate in a query or form, its 413 for a body too large, the
      method layer's 405 and 501) is replaced by ``error.html`` with the same status and the
      headers that matter to the client (``Allow``, ``Retry-After``, ``Set-Cookie``).
      ``/healthz``, ``/readyz`` and ``/metrics`` keep their answers.
    - An unexpected exception (a bug: a template error, a KeyError) becomes the HTML 500 page.
      It answers like the chassis' request context does (``chassis.app``): it logs the
      exception, records it on the span, and does not re-raise, so the gateway's keep-alive
      connection survives. Only an answer already started is left to the server to cut."""

    def __init__(self, app: ASGIApp, pages: Pages) -> None:
        self.app = app
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        page_path = not str(scope.get("path", "")).startswith(NOT_PAGES)
        #: the start of a problem answer held back until its body is done (then replaced)
        held: Message | None = None

        async def tracking(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                if page_path and _is_problem(message):
                    held = message
                    return
                started = True
            elif held is not None:
                if not message.get("more_body", False):
                    start, held = held, None
                    await self._page_for(scope, receive, send, start)
                    started = True
                return
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:
                raise
            trace.get_current_span().record_exception(exc)
            log.exception("unhandled_error", path=scope.get("path", ""))
            try:
                answer: Response = self.pages.render(
                    Request(scope), "error.html", {"status": 500}, status=500
                )
            except Exception:
                log.exception("error_page_failed", path=scope.get("path", ""))
                answer = HTMLResponse(BARE_500, status_code=500)
            await answer(scope, receive, send)

    async def _page_for(self, scope: Scope, receive: Receive, send: Send, start: Message) -> None:
        """``error.html`` for the held problem answer ``start``: same status, kept headers."""
        status = int(start["status"])
        kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _BODY_HEADERS]
        page = self.pages.render(Request(scope), "error.html", {"status": status}, status=status)
        headers = [(k, v) for k, v in page.raw_headers if k.lower() != b"set-cookie"] + kept
        await send({"type": "http.response.start", "status": status, "headers": headers})
        # a HEAD's answer has the GET's headers and no body (RFC 9110 §9.3.2)
        body = b"" if scope.get("method") == "HEAD" else bytes(page.body)
        await send({"type": "http.response.body", "body": body})


def _is_problem(start: Message) -> bool:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == b"application/problem+json"
    return False
