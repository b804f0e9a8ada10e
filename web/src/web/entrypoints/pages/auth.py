"""Sign-up, log-in and log-out pages (BFF: the login's tokens go into the server-side session, the browser gets only a new session cookie)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chassis.logging import get_logger
from web.adapters.gateway_client import ApiError, GatewayPort
from web.entrypoints.deps import (
    Api,
    CsrfForm,
    FormViewer,
    LoginRequired,
    Viewer,
    checked_form,
    flash,
    set_session_cookie,
    store,
)
from web.entrypoints.pages.home import safe_next
from web.entrypoints.rendering import Pages, Renderer, pages
from web.forms import CORRECT_FIELDS, FormErrors, from_api_error
from web.i18n import N_
from web.sessions import SignInUnavailable

router = APIRouter()
log = get_logger(__name__)

#: Details the member service writes for people (docs/services/member.md), in the catalog so
#: they show translated, with the form field each belongs to ("" = the whole form).
MEMBER_DETAILS: dict[str, str] = {
    N_("this email is already registered"): "email",
    N_("this nickname is already taken"): "nickname",
    N_("email is not a valid address"): "email",
    N_("nickname must be 2 to 20 characters"): "nickname",
    N_("nickname must not contain control characters"): "nickname",
    N_("this nickname is reserved"): "nickname",
    N_("password must be at least 8 characters"): "password",
    N_("password must be at most 128 characters"): "password",
    N_("current_password is required to change it"): "current_password",
    N_("the current password is wrong"): "current_password",
    N_("too many wrong current passwords; try again later"): "current_password",
    N_("too many failed logins; try again later"): "",
    N_("email or password is wrong"): "",
    N_("the account is WITHDRAWING"): "",
    N_("the account is WITHDRAWN"): "",
}
WRONG_CREDENTIALS = N_("Email or password is wrong.")
#: Deadline of the best-effort logout call (seconds): logging out never waits on the API.
LOGOUT_TIMEOUT_SECONDS = 2.0


def member_form_errors(request: Request, error: ApiError) -> FormErrors:
    """``forms.from_api_error`` plus the member service's known details put on their field."""
    renderer = pages(request)
    result = from_api_error(error, renderer.translator(request))
    detail = error.problem.get("detail")
    if error.status == 401 and detail == "email or password is wrong":
        result.message = renderer.gettext(request, WRONG_CREDENTIALS)
    elif isinstance(detail, str) and MEMBER_DETAILS.get(detail):
        result.fields.setdefault(MEMBER_DETAILS[detail], renderer.gettext(request, detail))
        # said under its field, not above the form as well
        result.message = renderer.gettext(request, CORRECT_FIELDS)
    # a form answered with 401 would need a WWW-Authenticate challenge: the page is simply shown
    if result.status == 401:
        result.status = 200
    return result


def _login_page(
    request: Request,
    renderer: Pages,
    *,
    next_path: str,
    email: str = "",
    errors: FormErrors | None = None,
) -> HTMLResponse:
    return renderer.render(
        request,
        "login.html",
        {"next": next_path, "email": email, "errors": errors or FormErrors()},
        status=errors.status if errors else 200,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    request: Request,
    viewer: FormViewer,
    renderer: Renderer,
    next: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    if viewer is not None and viewer.signed_in:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, renderer, next_path=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    form: CsrfForm,
    viewer: Viewer,
    api: Api,
    renderer: Renderer,
) -> Response:
    """``POST /api/auth/login``, then ``GET /api/members/me`` for the member's id, nickname and
    role (web reads no JWT), then a new session (fixation) and 303 to ``next``."""
    email = form.get("email", "").strip()
    next_path = safe_next(form.get("next"))
    try:
        tokens = (
            await api.call(
                "POST",
                "/api/auth/login",
                json={"email": email, "password": form.get("password", "")},
            )
        ).body
        gateway: GatewayPort = request.app.state.gateway
        client = request.client
        me = (
            await gateway.request(
                "GET",
                "/api/members/me",
                token=str(tokens["access_token"]),
                client_ip=client.host if client else None,
                request_id=getattr(request.state, "request_id", None),
            )
        ).body
    except ApiError as exc:
        return _login_page(
            request,
            renderer,
            next_path=next_path,
            email=email,
            errors=member_form_errors(request, exc),
        )
    sessions = store(request)
    cookie, session = await sessions.sign_in(viewer, tokens, me)
    set_session_cookie(request, cookie, max_age=sessions.settings.SESSION_MAX_AGE_SECONDS)
    request.state.session = session
    await flash(request, N_("Welcome, %(nickname)s."), "ok", nickname=session.nickname or "")
    return RedirectResponse(next_path, status_code=303)


def _signup_page(
    request: Request,
    renderer: Pages,
    *,
    values: dict[str, str] | None = None,
    errors: FormErrors | None = None,
) -> HTMLResponse:
    values = values or {}
    return renderer.render(
        request,
        "signup.html",
        {
            "values": values,
            "errors": errors or FormErrors(),
            # one key per form shown: a double submit creates one account (Idempotency-Key)
            "idempotency_key": values.get("idempotency_key") or str(uuid.uuid4()),
        },
        status=errors.status if errors else 200,
    )


@router.get("/signup", response_class=HTMLResponse)
async def signup_form(request: Request, viewer: FormViewer, renderer: Renderer) -> Response:
    if viewer is not None and viewer.signed_in:
        return RedirectResponse("/me", status_code=303)
    return _signup_page(request, renderer)


@router.post("/signup", response_class=HTMLResponse)
async def signup(request: Request, form: CsrfForm, api: Api, renderer: Renderer) -> Response:
    """``POST /api/members`` (201), then the log-in page with a message."""
    values = {
        "email": form.get("email", "").strip(),
        "nickname": form.get("nickname", "").strip(),
        "idempotency_key": form.get("idempotency_key", ""),
    }
    try:
        key = str(uuid.UUID(values["idempotency_key"]))
    except ValueError:
        key = str(uuid.uuid4())
    try:
        await api.call(
            "POST",
            "/api/members",
            json={
                "email": values["email"],
                "password": form.get("password", ""),
                "nickname": values["nickname"],
            },
            idempotency_key=key,
        )
    except ApiError as exc:
        return _signup_page(
            request, renderer, values=values, errors=member_form_errors(request, exc)
        )
    await flash(request, N_("Your account is ready. Please log in."), "ok")
    return RedirectResponse("/login", status_code=303)


@router.post("/logout")
async def logout(request: Request, viewer: Viewer) -> Response:
    """Revoke the refresh token (best effort: a failure is logged, the browser is logged out
    anyway), delete the session, remove the cookie, 303 home.

    Logging out never leaves the member stuck signed in: with the session store down (the
    token cannot be checked, the session not deleted) or the session already ended, the
    cookie is removed all the same and the page says what happened on the server. A cross-site
    POST is still refused (``CsrfRefused``: the origin check needs no store)."""
    try:
        await checked_form(request)
    except SignInUnavailable:
        log.warning("logout.session_store_unavailable")
        set_session_cookie(request, None)
        return RedirectResponse("/?notice=logged-out-offline", status_code=303)
    except LoginRequired:
        set_session_cookie(request, None)  # the session had ended already
        return RedirectResponse("/?notice=logged-out", status_code=303)
    if viewer is not None and viewer.refresh_token:
        try:
            gateway: GatewayPort = request.app.state.gateway
            await gateway.request(
                "POST",
                "/api/auth/logout",
                json={"refresh_token": viewer.refresh_token},
                timeout=LOGOUT_TIMEOUT_SECONDS,
            )
        except ApiError as exc:
            log.warning("logout.revoke_failed", status=exc.status)
    if viewer is not None:
        try:
            await store(request).end(viewer)
        except SignInUnavailable:
            log.warning("logout.session_not_deleted")
    set_session_cookie(request, None)
    return RedirectResponse("/?notice=logged-out", status_code=303)
