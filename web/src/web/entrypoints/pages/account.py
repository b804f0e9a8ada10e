"""Account pages (회원 정보수정 / 탈퇴): edit the profile, change the password, and withdraw, which starts the member-withdrawal saga."""

from __future__ import annotations

import math
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.adapters.gateway_client import ApiError, GatewayPort
from web.entrypoints.deps import Api, CsrfForm, Member, flash, set_session_cookie, store
from web.entrypoints.pages.auth import member_form_errors
from web.entrypoints.rendering import Pages, Renderer
from web.forms import FormErrors, from_api_error
from web.i18n import N_
from web.sessions import Session, SessionEnded

router = APIRouter()

PASSWORD_CHANGED = N_(
    "Your password is changed. Other devices are signed out within %(minutes)s minutes, "
    "when the access they hold now expires."
)
PASSWORD_CHANGED_SHORTLY = N_(
    "Your password is changed. Other devices are signed out shortly, when the access they "
    "hold now expires."
)
PASSWORDS_DIFFER = N_("The two new passwords are not the same.")
CONFIRM_WITHDRAWAL = N_("Tick the box to confirm that you want to withdraw.")
WITHDRAWAL_CONFLICT = N_(
    "A withdrawal of this account is already running or done. Reload the page to see it."
)


async def _profile(api: Api) -> tuple[dict[str, Any] | None, str]:
    """``GET /api/members/me``, or None and the reason it could not be had."""
    try:
        found = await api.get("/api/members/me")
    except ApiError as exc:
        if exc.unavailable:
            return None, N_(
                "Your profile cannot be loaded right now. Please try again in a moment."
            )
        raise
    return (found if isinstance(found, dict) else None), ""


async def _account_page(
    request: Request,
    renderer: Pages,
    api: Api,
    member: Session,
    *,
    profile_errors: FormErrors | None = None,
    password_errors: FormErrors | None = None,
    nickname: str | None = None,
) -> HTMLResponse:
    profile, problem = await _profile(api)
    status = (profile_errors or password_errors or FormErrors()).status
    return renderer.render(
        request,
        "account.html",
        {
            "profile": profile,
            "problem": renderer.gettext(request, problem) if problem else "",
            "nickname": nickname if nickname is not None else member.nickname,
            "profile_errors": profile_errors or FormErrors(),
            "password_errors": password_errors or FormErrors(),
        },
        status=status,
    )


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, member: Member, api: Api, renderer: Renderer) -> Response:
    return await _account_page(request, renderer, api, member)


@router.post("/account/profile", response_class=HTMLResponse)
async def save_profile(
    request: Request,
    form: CsrfForm,
    member: Member,
    api: Api,
    renderer: Renderer,
) -> Response:
    """``PATCH /api/members/me {nickname}``; the session's nickname follows."""
    nickname = form.get("nickname", "").strip()
    try:
        answer = await api.call("PATCH", "/api/members/me", json={"nickname": nickname})
    except ApiError as exc:
        errors = member_form_errors(request, exc)
        return await _account_page(
            request, renderer, api, member, profile_errors=errors, nickname=nickname
        )
    body = answer.body if isinstance(answer.body, dict) else {}
    session = api.session or member
    await store(request).update(session, nickname=str(body.get("nickname") or nickname))
    await flash(request, N_("Your profile is saved."), "ok")
    return RedirectResponse("/account", status_code=303)


@router.post("/account/password", response_class=HTMLResponse)
async def change_password(
    request: Request,
    form: CsrfForm,
    member: Member,
    api: Api,
    renderer: Renderer,
) -> Response:
    """``PATCH /api/members/me {password, current_password}``.

    Member revokes every refresh token of the account on a password change, this session's
    too (other devices are signed out when their access token expires, at most one token
    life later); so web logs in again with the new password at once and
    moves to a new session id, instead of letting this session end at its next refresh."""
    current, new, again = (form.get(k, "") for k in ("current_password", "password", "password2"))
    if new != again:
        renderer_text = renderer.gettext(request, PASSWORDS_DIFFER)
        errors = FormErrors(fields={"password2": renderer_text}, status=422)
        return await _account_page(request, renderer, api, member, password_errors=errors)
    try:
        me = await api.get("/api/members/me")
        await api.call(
            "PATCH", "/api/members/me", json={"password": new, "current_password": current}
        )
    except ApiError as exc:
        errors = member_form_errors(request, exc)
        return await _account_page(request, renderer, api, member, password_errors=errors)
    session = api.session or member
    gateway: GatewayPort = request.app.state.gateway
    sessions = store(request)
    try:
        tokens = (
            await gateway.request(
                "POST", "/api/auth/login", json={"email": me["email"], "password": new}
            )
        ).body
    except ApiError as exc:
        await sessions.end(session)
        raise SessionEnded(session, "password changed") from exc
    cookie, renewed = await sessions.sign_in(session, tokens, me)
    set_session_cookie(request, cookie, max_age=sessions.settings.SESSION_MAX_AGE_SECONDS)
    request.state.session = renewed
    # member revokes the other devices' refresh tokens at once, but an access token already
    # issued stays valid until it expires (a JWT is checked without asking member): say when
    # the other devices are out, from the token life this login was given
    life = tokens.get("expires_in") if isinstance(tokens, dict) else None
    if isinstance(life, int) and not isinstance(life, bool) and life > 0:
        await flash(request, PASSWORD_CHANGED, "ok", minutes=max(1, math.ceil(life / 60)))
    else:
        await flash(request, PASSWORD_CHANGED_SHORTLY, "ok")
    return RedirectResponse("/account", status_code=303)


def _withdraw_page(
    request: Request,
    renderer: Pages,
    *,
    errors: FormErrors | None = None,
    idempotency_key: str | None = None,
) -> HTMLResponse:
    return renderer.render(
        request,
        "withdraw.html",
        {
            "errors": errors or FormErrors(),
            "idempotency_key": idempotency_key or str(uuid.uuid4()),
        },
        status=errors.status if errors else 200,
    )


@router.get("/account/withdraw", response_class=HTMLResponse)
async def withdraw_form(request: Request, member: Member, renderer: Renderer) -> Response:
    return _withdraw_page(request, renderer)


@router.post("/account/withdraw", response_class=HTMLResponse)
async def withdraw(
    request: Request,
    form: CsrfForm,
    member: Member,
    api: Api,
    renderer: Renderer,
) -> Response:
    """``DELETE /api/members/me`` (202 ``{saga_id}``), then the saga's live page. The session
    remembers the saga: its COMPLETED outcome reaches this session as a 401 (docs/sagas.md)."""
    try:
        key = str(uuid.UUID(form.get("idempotency_key", "")))
    except ValueError:
        key = str(uuid.uuid4())
    if form.get("confirm") != "yes":
        errors = FormErrors(
            fields={"confirm": renderer.gettext(request, CONFIRM_WITHDRAWAL)}, status=422
        )
        return _withdraw_page(request, renderer, errors=errors, idempotency_key=key)
    try:
        # A whole token life ahead first. member refuses to refresh a WITHDRAWING member's
        # tokens, and this session reads a 401 during its withdrawal as the COMPLETED outcome:
        # a refresh needed mid-saga would end the session while the saga might still
        # compensate. With a fresh token, the only 401 before the token expires is the
        # deny-list entry the pivot writes (docs/web.md, "Sagas you can watch").
        await api.renew_token()
        answer = await api.call("DELETE", "/api/members/me", idempotency_key=key)
    except ApiError as exc:
        errors = from_api_error(exc, renderer.translator(request))
        if exc.status == 409:
            errors.message = renderer.gettext(request, WITHDRAWAL_CONFLICT)
        return _withdraw_page(request, renderer, errors=errors, idempotency_key=key)
    saga_id = str(uuid.UUID(str(answer.body["saga_id"])))
    await store(request).update(api.session or member, withdrawal_saga_id=saga_id)
    return RedirectResponse(f"/sagas/{saga_id}", status_code=303)
