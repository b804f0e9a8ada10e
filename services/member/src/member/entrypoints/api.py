"""HTTP API of the member service: sign-up, login sessions, profile, activity and the JWKS."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, Depends, Response, status

from chassis.auth import CurrentPrincipal
from chassis.idempotency import IdempotencyKeyHeader
from chassis.openapi import problems
from chassis.problems import Forbidden, NotFound
from member import views
from member.domain.commands import ChangeProfile, LogIn, LogOut, RefreshSession, RegisterMember
from member.entrypoints.deps import (
    PasswordCheckThrottle,
    Passwords,
    SettingsDep,
    Throttle,
    Tokens,
    Uow,
    limit_login_per_address,
    limit_sign_up_per_address,
)
from member.entrypoints.schemas import (
    ActivityPublic,
    JwksPublic,
    LoginRequest,
    LogoutRequest,
    MemberCreate,
    MemberPublic,
    MemberUpdate,
    RefreshRequest,
    TokenPairPublic,
)
from member.service_layer import handlers
from member.service_layer.handlers import BEARER, TokenPair

router = APIRouter()


async def _member_public(uow: Uow, member_id: uuid.UUID) -> MemberPublic:
    async with uow:
        row = await views.member(uow.session, member_id)
    if row is None:
        raise NotFound("member not found")
    return MemberPublic.from_view(row)


def _token_pair(pair: TokenPair) -> TokenPairPublic:
    return TokenPairPublic(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=BEARER,
        expires_in=pair.expires_in,
    )


@router.post(
    "/api/members",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberPublic,
    tags=["members"],
    responses=problems(429),
    dependencies=[Depends(limit_sign_up_per_address)],
)
async def sign_up(
    body: MemberCreate,
    response: Response,
    uow: Uow,
    passwords: Passwords,
    idempotency_key: IdempotencyKeyHeader,
) -> MemberPublic:
    """Sign up (회원 가입): a new member with 100 points. At most ``SIGN_UP_PER_ADDRESS_PER_MINUTE``
    per client address (429 with ``Retry-After`` past it)."""
    member_id = await handlers.register(
        RegisterMember(email=body.email, password=body.password, nickname=body.nickname),
        uow,
        passwords,
        idempotency_key=idempotency_key,
    )
    response.headers["Location"] = f"/api/members/{member_id}"
    return await _member_public(uow, member_id)


@router.get("/api/members/me", response_model=MemberPublic, tags=["members"])
async def read_me(principal: CurrentPrincipal, uow: Uow) -> MemberPublic:
    """The calling member."""
    return await _member_public(uow, principal.id)


@router.patch(
    "/api/members/me", response_model=MemberPublic, tags=["members"], responses=problems(429)
)
async def update_me(
    body: MemberUpdate,
    principal: CurrentPrincipal,
    uow: Uow,
    passwords: Passwords,
    throttle: PasswordCheckThrottle,
) -> MemberPublic:
    """Update profile (회원 정보 수정): nickname and/or password. ``current_password`` checks are
    limited per member (``LOGIN_MAX_FAILURES`` per window; 429 with ``Retry-After`` past it)."""
    await handlers.change_profile(
        ChangeProfile(
            member_id=principal.id,
            nickname=body.nickname,
            password=body.password,
            current_password=body.current_password,
        ),
        uow,
        passwords,
        throttle=throttle,
    )
    return await _member_public(uow, principal.id)


@router.get("/api/members/me/activity", response_model=ActivityPublic, tags=["members"])
async def read_my_activity(principal: CurrentPrincipal, uow: Uow) -> ActivityPublic:
    """The calling member's activity counts, from the read model (eventually consistent)."""
    async with uow:
        row = await views.activity(uow.session, principal.id)
    if row is None:
        raise NotFound("member not found")
    return ActivityPublic.model_validate(row)


@router.get("/api/members/{member_id}", response_model=MemberPublic, tags=["members"])
async def read_member(member_id: uuid.UUID, principal: CurrentPrincipal, uow: Uow) -> MemberPublic:
    """One member, for that member or an admin (the ``Location`` of a sign-up)."""
    if principal.id != member_id and not principal.is_admin:
        raise Forbidden("only the member or an admin may read this member")
    return await _member_public(uow, member_id)


@router.post(
    "/api/auth/login",
    response_model=TokenPairPublic,
    tags=["auth"],
    responses=problems(401, 403, 429),
    dependencies=[Depends(limit_login_per_address)],
)
async def log_in(
    body: LoginRequest,
    uow: Uow,
    passwords: Passwords,
    tokens: Tokens,
    throttle: Throttle,
    settings: SettingsDep,
) -> TokenPairPublic:
    """Exchange email and password for an access token and a refresh token. At most
    ``LOGIN_MAX_FAILURES`` password checks per email per window and
    ``LOGIN_PER_ADDRESS_PER_MINUTE`` requests per client address (429 with ``Retry-After``)."""
    pair = await handlers.log_in(
        LogIn(email=body.email, password=body.password),
        uow,
        passwords=passwords,
        tokens=tokens,
        throttle=throttle,
        refresh_ttl=dt.timedelta(days=settings.REFRESH_TOKEN_TTL_DAYS),
    )
    return _token_pair(pair)


@router.post(
    "/api/auth/refresh", response_model=TokenPairPublic, tags=["auth"], responses=problems(401, 403)
)
async def refresh(
    body: RefreshRequest, uow: Uow, tokens: Tokens, settings: SettingsDep
) -> TokenPairPublic:
    """Rotate a refresh token: a new pair; the old refresh token is used up."""
    pair = await handlers.refresh(
        RefreshSession(refresh_token=body.refresh_token),
        uow,
        tokens=tokens,
        refresh_ttl=dt.timedelta(days=settings.REFRESH_TOKEN_TTL_DAYS),
    )
    return _token_pair(pair)


@router.post(
    "/api/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["auth"],
    responses=problems(401),
)
async def log_out(body: LogoutRequest, uow: Uow) -> Response:
    """Revoke the session the refresh token belongs to."""
    await handlers.log_out(LogOut(refresh_token=body.refresh_token), uow)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/.well-known/jwks.json", response_model=JwksPublic, tags=["auth"])
async def jwks(tokens: Tokens, response: Response) -> JwksPublic:
    """The public keys that verify access tokens (current and previous, for rotation)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return JwksPublic.model_validate(tokens.jwks())
