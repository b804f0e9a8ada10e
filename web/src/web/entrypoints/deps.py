"""Request dependencies of the pages: the visitor's session, sign-in guard, CSRF-checked forms and the token-carrying API caller (BFF).

Pages declare ``viewer: Viewer``, ``member: Member``, ``form: CsrfForm`` and ``api: Api`` (and
``viewer: FormViewer`` on a page that shows a form to guests) and never touch cookies, tokens
or Redis themselves; ``await flash(request, N_("..."))`` leaves a message for the next page.

CSRF defence (OWASP's "synchronizer token" pattern, plus the origin check it recommends):
every POST is checked before anything else: the session's token must come back in the
``csrf_token`` field or the ``X-CSRF-Token`` header (compared in constant time), and the
request must come from our own pages. A browser says so itself in ``Sec-Fetch-Site``
(``same-origin``; Fetch Metadata, sent by every current browser); without it, ``Origin`` (or
else ``Referer``), when sent, must name this host. The gateway replaces ``Host`` on the way
here, so the browser's own judgement is preferred to comparing host names.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.adapters.gateway_client import ApiError, ApiResponse, GatewayPort
from web.entrypoints.rendering import Pages, pages
from web.i18n import N_
from web.sessions import (
    Flash,
    Session,
    SessionEnded,
    SessionStore,
    SignInUnavailable,
    clear_cookie_header,
    cookie_name,
    set_cookie_header,
)

#: Messages a redirect can name in ``?notice=`` (the session that would hold a flash is gone).
NOTICES: dict[str, Flash] = {
    "ended": Flash(N_("Your session has ended. Please log in again."), "info"),
    "logged-out": Flash(N_("You are logged out."), "ok"),
    "withdrawn": Flash(N_("Your account was withdrawn and you are logged out."), "ok"),
    "logged-out-offline": Flash(
        N_(
            "You are logged out in this browser. The session store is unavailable right now, so "
            "the session on the server could not be deleted: it ends by itself when it has not "
            "been used for %(hours)s hours."
        ),
        "ok",
    ),
}
UNAVAILABLE = N_("This part of the site is temporarily unavailable. Please try again in a moment.")
SIGN_IN_UNAVAILABLE = N_(
    "Sign-in is temporarily unavailable. You can keep reading; please try again in a moment."
)
#: Forms a guest fills in (their session is a guest's): an expired one is "reload the form".
GUEST_FORMS = ("/login", "/signup")
#: The request state's key for a ``Set-Cookie`` value (``SessionCookieMiddleware`` sends it).
_COOKIE_STATE = "session_set_cookie"


class LoginRequired(Exception):
    """The page needs a signed-in member: answered with 303 to ``/login?next=<path>``."""

    def __init__(self, next_path: str, notice: str | None = None) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.notice = notice

    @property
    def location(self) -> str:
        target = f"/login?next={quote(self.next_path, safe='')}"
        return f"{target}&notice={self.notice}" if self.notice else target


class CsrfRefused(Exception):
    """A POST without this session's CSRF token, or from another Origin: answered with a 403
    page ("this form has expired, reload the page") before any API call."""


def store(request: Request) -> SessionStore:
    """The app's ``SessionStore`` (set by bootstrap)."""
    found: SessionStore = request.app.state.sessions
    return found


def set_session_cookie(request: Request, cookie: str | None, *, max_age: int = 0) -> None:
    """Send the session cookie with this response (``None``: remove it)."""
    scheme = request.url.scheme
    value = (
        clear_cookie_header(scheme)
        if cookie is None
        else set_cookie_header(cookie, scheme=scheme, max_age=max_age)
    )
    setattr(request.state, _COOKIE_STATE, value)


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


async def current_session(request: Request) -> Session | None:
    """The visitor's session, or ``None`` (no cookie, unknown cookie, Redis down); also
    stored on ``request.state.session`` for the templates, with its one-shot message on
    ``request.state.flash``. With Redis down, ``request.state.sessions_unavailable`` is True
    and the page carries the "sign-in is temporarily unavailable" message."""
    state = request.state
    if getattr(state, "session_loaded", False):
        found: Session | None = state.session
        return found
    state.session_loaded = True
    state.session = None
    state.sessions_unavailable = False
    renderer = pages(request)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    if notice is not None:
        text = renderer.gettext(request, notice.text)
        if "%(hours)s" in notice.text:
            idle_hours = max(1, round(renderer.settings.SESSION_IDLE_SECONDS / 3600))
            text = text % {"hours": idle_hours}
        state.flash = Flash(text, notice.kind)
    cookie = request.cookies.get(cookie_name(request.url.scheme))
    if not cookie:
        return None
    sessions = store(request)
    try:
        session = await sessions.load(cookie)
    except SignInUnavailable:
        # the cookie is kept: the member is back as soon as Redis is
        state.sessions_unavailable = True
        state.flash = Flash(renderer.gettext(request, SIGN_IN_UNAVAILABLE), "error")
        return None
    if session is None:
        set_session_cookie(request, None)  # expired or unknown: do not send it again
        return None
    state.session = session
    if request.method in ("GET", "HEAD"):
        message = await sessions.take_flash(session)
        if message is not None:
            state.flash = message
    return session


async def form_session(request: Request) -> Session | None:
    """The session of a page that shows a form to guests (log-in, sign-up): a guest session
    is started when there is none, so the form carries a CSRF token. ``None`` when Redis is
    down (the form is shown; posting it is refused with the reason)."""
    session = await current_session(request)
    if session is not None or request.state.sessions_unavailable:
        return session
    sessions = store(request)
    try:
        cookie, session = await sessions.start_guest()
    except SignInUnavailable:
        request.state.sessions_unavailable = True
        request.state.flash = Flash(pages(request).gettext(request, SIGN_IN_UNAVAILABLE), "error")
        return None
    set_session_cookie(request, cookie, max_age=sessions.settings.ANON_SESSION_SECONDS)
    request.state.session = session
    return session


async def require_member(request: Request) -> Session:
    """The signed-in member's session, else ``LoginRequired`` (or ``SignInUnavailable`` while
    Redis is down: the member is not sent to a log-in that cannot work)."""
    session = await current_session(request)
    if request.state.sessions_unavailable:
        raise SignInUnavailable("session store unavailable")
    if session is None or not session.signed_in:
        # a form's POST comes back to the page the form was on (never the POST path: a 405
        # after the log-in); a cookie whose session is gone ended while the member was away
        ended = session is None and bool(request.cookies.get(cookie_name(request.url.scheme)))
        raise LoginRequired(_return_path(request), notice="ended" if ended else None)
    return session


def _same_origin(request: Request) -> bool:
    """The POST came from our own pages (see the module docstring)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed is None:
        return True  # neither sent (an old client or a privacy setting): the token decides
    parts = urlsplit(claimed)
    ours = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return bool(parts.netloc) and parts.scheme in ("http", "https") and parts.netloc in ours


async def checked_form(request: Request) -> dict[str, str]:
    """The POSTed form fields (last value wins) after the CSRF check; raises ``CsrfRefused``,
    or ``SignInUnavailable`` when the token cannot be checked (Redis down: writes fail closed)."""
    if not _same_origin(request):
        raise CsrfRefused("cross-origin")
    session = await current_session(request)
    if request.state.sessions_unavailable:
        raise SignInUnavailable("session store unavailable")
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if session is None:
        if not await store(request).available():
            request.state.sessions_unavailable = True
            raise SignInUnavailable("session store unavailable")
        back = _return_path(request)
        cookie = request.cookies.get(cookie_name(request.url.scheme))
        if cookie and urlsplit(back).path not in GUEST_FORMS:
            # the cookie named a session that ended while the visitor was away (idle expiry):
            # log in again and come back to the page the form was on (a GET page, never this
            # POST path, which would be a 405 after the log-in)
            raise LoginRequired(back, notice="ended")
        raise CsrfRefused("no session")
    sent = fields.get("csrf_token") or request.headers.get("x-csrf-token") or ""
    if not hmac.compare_digest(sent.encode("utf-8", "replace"), session.csrf.encode()):
        raise CsrfRefused("token mismatch")
    fields.pop("csrf_token", None)
    return fields


async def flash(request: Request, text: str, kind: str = "info", **params: object) -> None:
    """Leave a one-shot message for the visitor's next page (post/redirect/get). ``text`` is
    an English msgid (mark it ``N_("...")`` so ``make i18n`` finds it), translated here into
    the visitor's language, then filled with ``params`` (``%(name)s``); ``kind`` is ``info``,
    ``ok`` or ``error``. Without a session (or with Redis down) the message is dropped: it is
    a courtesy, never the only outcome."""
    session: Session | None = getattr(request.state, "session", None)
    if session is None:
        return
    message = pages(request).gettext(request, text)
    if params:
        message = message % params
    await store(request).flash(session, message, kind)


class ApiCaller:
    """Calls the gateway on behalf of the visitor: with the member's access token (refreshed
    before it expires, single-flight per session), the browser's address and the request id.
    Each method returns the 2xx ``ApiResponse`` or raises ``ApiError``; for a member, also
    ``SessionEnded`` (the refresh was refused: the handler sends the visitor to log in) and
    ``SignInUnavailable``.

    A 401 to a token believed valid (revoked, or the clocks disagree) gets one forced refresh
    and one retry: a 401 means the gateway applied nothing, so the retry is safe for a write."""

    def __init__(self, gateway: GatewayPort, request: Request, session: Session | None) -> None:
        self._gateway = gateway
        self._request = request
        self._session = session

    @property
    def session(self) -> Session | None:
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> ApiResponse:
        client = self._request.client
        client_ip = client.host if client else None
        session = self._session
        sessions = store(self._request)
        if session is not None and session.signed_in:
            session = await self._use(await sessions.fresh(session, client_ip=client_ip))
        try:
            return await self._send(method, path, session, json, params, idempotency_key, timeout)
        except ApiError as exc:
            if exc.status != 401 or session is None or not session.signed_in:
                raise
            rejected = session.access_token
            session = await self._use(
                await sessions.fresh(session, rejected_token=rejected, client_ip=client_ip)
            )
            return await self._send(method, path, session, json, params, idempotency_key, timeout)

    async def renew_token(self) -> None:
        """Refresh the signed-in member's access token now, whatever its age (single-flight
        like every refresh). Raises as ``call`` does."""
        session = self._session
        if session is None or not session.signed_in:
            return
        client = self._request.client
        await self._use(
            await store(self._request).fresh(
                session,
                rejected_token=session.access_token,
                client_ip=client.host if client else None,
            )
        )

    async def _use(self, session: Session) -> Session:
        self._session = session
        self._request.state.session = session
        return session

    async def _send(
        self,
        method: str,
        path: str,
        session: Session | None,
        json: Any,
        params: dict[str, Any] | None,
        idempotency_key: str | None,
        timeout: float | None,
    ) -> ApiResponse:
        client = self._request.client
        return await self._gateway.request(
            method,
            path,
            token=session.access_token if session is not None else None,
            json=json,
            params=params,
            client_ip=client.host if client else None,
            request_id=getattr(self._request.state, "request_id", None),
            idempotency_key=idempotency_key,
            timeout=timeout,
        )

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return (await self.call("GET", path, params=params)).body


async def api_caller(
    request: Request, session: Annotated[Session | None, Depends(current_session)]
) -> ApiCaller:
    gateway: GatewayPort = request.app.state.gateway
    return ApiCaller(gateway, request, session)


Viewer = Annotated[Session | None, Depends(current_session)]
FormViewer = Annotated[Session | None, Depends(form_session)]
Member = Annotated[Session, Depends(require_member)]
CsrfForm = Annotated[dict[str, str], Depends(checked_form)]
Api = Annotated[ApiCaller, Depends(api_caller)]


def _return_path(request: Request) -> str:
    """Where to come back after logging in again: this page for a GET; for a form, the page
    it was on (same-site Referer), else home."""
    if request.method in ("GET", "HEAD"):
        return _here(request)
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.path.startswith("/") and not referer.path.startswith("//"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


def install_session_handlers(app: FastAPI, renderer: Pages) -> None:
    """Answer the session layer's exceptions: ``LoginRequired`` and ``SessionEnded`` with 303
    to the log-in page, ``CsrfRefused`` with a 403 page, ``SignInUnavailable`` with a page
    that says so (200: web never answers 5xx for a dependency it degrades around, and the
    gateway's breaker would count a 503 as web's own outage)."""

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(exc.location, status_code=303)

    async def session_ended(request: Request, exc: Exception) -> Response:
        target = LoginRequired(_return_path(request), notice="ended").location
        set_session_cookie(request, None)
        return RedirectResponse(target, status_code=303)

    async def csrf_refused(request: Request, exc: Exception) -> Response:
        return renderer.render(
            request, "form_expired.html", {"back": _return_path(request)}, status=403
        )

    async def unavailable(request: Request, exc: Exception) -> Response:
        return renderer.render(request, "signin_unavailable.html", status=200)

    async def api_error(request: Request, exc: Exception) -> Response:
        # a page that did not catch an API refusal still shows a page, never a problem
        # document, and never relays 502-504 (the gateway's breaker would count them as web's)
        assert isinstance(exc, ApiError)
        if exc.unavailable:
            message = renderer.gettext(request, UNAVAILABLE)
            return renderer.render(request, "error.html", {"status": 200, "message": message})
        status = exc.status if exc.status in (403, 404, 409, 429) else 400
        return renderer.render(request, "error.html", {"status": status}, status=status)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(SessionEnded, session_ended)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(SignInUnavailable, unavailable)


#: Paths that are not pages: no session is looked up for them.
_NO_SESSION = ("/static/", "/healthz", "/readyz", "/metrics")


class SessionCookieMiddleware:
    """ASGI middleware: loads the visitor's session for every page (``current_session``) and
    adds the ``Set-Cookie`` a dependency decided on (``set_session_cookie``) to whatever
    response the page returns, so no page handles the cookie itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if scope.get("method") in ("GET", "HEAD") and not path.startswith(_NO_SESSION):
            # every page knows its visitor (the header's links, an error page's too), not
            # only the pages that ask for ``Viewer``; the load is cached on request.state
            await current_session(Request(scope))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = scope.get("state", {}).get(_COOKIE_STATE)
                if value:
                    headers = [
                        (k, v)
                        for k, v in message.get("headers", [])
                        if not (k == b"set-cookie" and _is_session_cookie(v))
                    ]
                    headers.append((b"set-cookie", value.encode("latin-1")))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _is_session_cookie(value: bytes) -> bool:
    name = value.split(b"=", 1)[0].strip()
    return name in (b"msa_session", b"__Host-msa_session")
