"""Service layer: the member use cases, each in one unit of work with the events it publishes (outbox).

Sign-up, profile changes and the admin seed (accounts); log in, refresh with rotating refresh
tokens and reuse detection, and log out (sessions). Handlers receive their unit of work, the
ports they need (``service_layer/ports.py``) and plain values; they know nothing about HTTP.
The saga steps live in ``saga_steps.py`` and reuse ``publish_events``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from chassis.messaging.envelope import event_data
from member.domain import errors
from member.domain.commands import ChangeProfile, LogIn, LogOut, RefreshSession, RegisterMember
from member.domain.events import Event
from member.domain.identity import canonical
from member.domain.model import (
    Member,
    Role,
    check_password_policy,
    normalize_email,
    normalize_nickname,
    utcnow,
)
from member.domain.sessions import REFRESH_TOKEN_MAX_LENGTH, RefreshToken, hash_token
from member.service_layer.ports import (
    AccessTokenIssuer,
    AttemptThrottle,
    PasswordHasher,
    UnitOfWork,
)

# --- transactional outbox (producer side) --------------------------------------------------

EVENTS_TOPIC = "member.events"


async def publish_events(uow: UnitOfWork, events: Iterable[Event]) -> None:
    """Stage events in the outbox of the current transaction (they leave only if it commits)."""
    for event in events:
        await uow.publish(EVENTS_TOPIC, event.name, key=event.key, data=event_data(event))


# --- accounts ------------------------------------------------------------------------------

SIGN_UP_SCOPE = "POST /api/members"


def sign_up_fingerprint(email: str, nickname: str) -> str:
    """What identifies a sign-up for ``Idempotency-Key`` (the password is deliberately left out:
    nothing derived from it is stored outside the argon2 hash)."""
    body = json.dumps({"email": email, "nickname": nickname}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


async def register(
    cmd: RegisterMember,
    uow: UnitOfWork,
    passwords: PasswordHasher,
    *,
    idempotency_key: str | None = None,
    role: Role = Role.USER,
) -> uuid.UUID:
    """Sign up (회원 가입); returns the member id (the first one again for a repeated key)."""
    check_password_policy(cmd.password)
    email = normalize_email(cmd.email)
    nickname = normalize_nickname(cmd.nickname)
    async with uow:
        if idempotency_key is not None:
            stored = await uow.idempotency.claim(
                SIGN_UP_SCOPE, idempotency_key, sign_up_fingerprint(email, nickname)
            )
            if stored is not None:
                return uuid.UUID(str(stored.body["id"]))
        if await uow.members.email_taken(email):
            raise errors.DuplicateEmail("this email is already registered")
        if await uow.members.nickname_taken(nickname):
            raise errors.DuplicateNickname("this nickname is already taken")
        member = Member.register(
            email=email,
            nickname=nickname,
            password_hash=await passwords.hash(cmd.password),
            role=role,
        )
        await uow.members.add(member)
        await publish_events(uow, member.pull_events())
        if idempotency_key is not None:
            await uow.idempotency.complete(
                SIGN_UP_SCOPE, idempotency_key, 201, {"id": str(member.id)}
            )
        await uow.commit()
    return member.id


async def change_profile(
    cmd: ChangeProfile,
    uow: UnitOfWork,
    passwords: PasswordHasher,
    *,
    throttle: AttemptThrottle,
    now: dt.datetime | None = None,
) -> None:
    """Update profile (회원 정보 수정): nickname and/or password (the latter needs the current one).

    A new password ends every other session: all refresh tokens are revoked. The check of
    ``current_password`` is reserved in ``throttle`` (keyed by the member id) before the hash
    check, as at login: past the limit it is ``LoginLocked`` (429) without a check, however many
    requests arrive at once."""
    when = now or utcnow()
    new_hash: str | None = None
    if cmd.password is not None:
        check_password_policy(cmd.password)
        if cmd.current_password is None:
            raise errors.CurrentPasswordRequired("current_password is required to change it")
        subject = str(cmd.member_id)
        retry_after = await throttle.reserve(subject)
        if retry_after is not None:
            raise errors.LoginLocked(
                retry_after, "too many wrong current passwords; try again later"
            )
        try:
            async with uow:
                current = await uow.members.get(cmd.member_id)
            if current is None:
                raise errors.MemberNotFound("member not found")
        except BaseException:
            await throttle.release(subject)  # the attempt never reached the password check
            raise
        if not await passwords.verify(current.password_hash, cmd.current_password):
            raise errors.WrongCurrentPassword("the current password is wrong")
        await throttle.reset(subject)
        new_hash = await passwords.hash(cmd.password)
    async with uow:
        member = await uow.members.get(cmd.member_id, for_update=True)
        if member is None:
            raise errors.MemberNotFound("member not found")
        member.require_profile_changeable()
        if cmd.nickname is not None:
            nickname = normalize_nickname(cmd.nickname)
            if await uow.members.nickname_taken(nickname, other_than=member.id):
                raise errors.DuplicateNickname("this nickname is already taken")
            member.change_nickname(nickname, when)
        if new_hash is not None:
            member.change_password_hash(new_hash, when)
            await uow.refresh_tokens.revoke_all_for_member(member.id, when)
        await uow.members.save(member)
        await publish_events(uow, member.pull_events())
        await uow.commit()


async def seed_admin(
    uow: UnitOfWork, passwords: PasswordHasher, *, email: str, password: str, nickname: str
) -> uuid.UUID | None:
    """Create the admin account unless one with this email exists; returns its id if created.

    The MemberRegistered event tells board and qna the admin's nickname."""
    normalized = normalize_email(email)
    async with uow:
        if await uow.members.get_by_email(normalized) is not None:
            return None
    return await register(
        RegisterMember(email=normalized, password=password, nickname=nickname),
        uow,
        passwords,
        role=Role.ADMIN,
    )


# --- sessions ------------------------------------------------------------------------------

#: OAuth 2.0 token type of the access token (RFC 6750), not a secret.
BEARER: Final = "bearer"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = BEARER


async def log_in(
    cmd: LogIn,
    uow: UnitOfWork,
    *,
    passwords: PasswordHasher,
    tokens: AccessTokenIssuer,
    throttle: AttemptThrottle,
    refresh_ttl: dt.timedelta,
    now: dt.datetime | None = None,
) -> TokenPair:
    """Exchange email and password for an access token and a new refresh-token family.

    The attempt is reserved in the throttle *before* the password is checked, in one atomic
    step, so at most ``LOGIN_MAX_FAILURES`` hash checks per email run in a window however many
    requests arrive at once; the next gets ``LoginLocked`` (429) without a check, and a locked-out
    attacker learns nothing from further guesses. A wrong password keeps its reserved attempt
    (that is the failure being counted); a right one clears the count, so after N failures in a
    window the next attempt is refused (docs/services/member.md)."""
    email = canonical(cmd.email)  # text identity: the lookup's and the throttle's key
    retry_after = await throttle.reserve(email)
    if retry_after is not None:
        raise errors.LoginLocked(retry_after)
    try:
        async with uow:
            member = await uow.members.get_by_email(email)
    except BaseException:
        await throttle.release(email)  # the attempt never reached the password check
        raise
    # The hash check runs outside any transaction: it is slow on purpose.
    if not await passwords.verify(member.password_hash if member else None, cmd.password):
        raise errors.InvalidCredentials("email or password is wrong")
    if member is None or member.password_hash is None:  # verify() is False for these already
        raise errors.InvalidCredentials("email or password is wrong")
    await throttle.reset(email)  # the right password: the user who typed it is not punished
    if not member.is_active:
        raise errors.AccountNotActive(f"the account is {member.status}")
    rehash = (
        await passwords.hash(cmd.password) if passwords.needs_rehash(member.password_hash) else None
    )
    when = now or utcnow()
    async with uow:
        if rehash is not None:
            current = await uow.members.get(member.id, for_update=True)
            if current is not None and current.password_hash == member.password_hash:
                current.rehash_password(rehash)
                await uow.members.save(current)
        token, raw = RefreshToken.issue(member.id, ttl=refresh_ttl, now=when)
        await uow.refresh_tokens.add(token)
        await uow.commit()
    access = tokens.issue(member.id, member.role)
    return TokenPair(access.token, raw, access.expires_in)


async def refresh(
    cmd: RefreshSession,
    uow: UnitOfWork,
    *,
    tokens: AccessTokenIssuer,
    refresh_ttl: dt.timedelta,
    now: dt.datetime | None = None,
) -> TokenPair:
    """Rotate: the presented token is used up and its successor issued in the same family.

    Presenting a token that was already used means two parties hold it; the whole family is
    revoked, so the thief's copy dies with the victim's."""
    when = now or utcnow()
    if not cmd.refresh_token or len(cmd.refresh_token) > REFRESH_TOKEN_MAX_LENGTH:
        raise errors.InvalidRefreshToken("the refresh token is not valid")
    async with uow:
        token = await uow.refresh_tokens.get_by_hash(hash_token(cmd.refresh_token))
        if token is None or token.is_revoked:
            raise errors.InvalidRefreshToken("the refresh token is not valid")
        if token.was_used:
            await uow.refresh_tokens.revoke_family(token.family_id, when)
            await uow.commit()
            raise errors.InvalidRefreshToken("the refresh token was already used; session revoked")
        if token.is_expired(when):
            raise errors.InvalidRefreshToken("the refresh token has expired")
        member = await uow.members.get(token.member_id)
        if member is None or not member.is_active:
            raise errors.InvalidRefreshToken("the account is not active")
        successor, raw = token.rotate(ttl=refresh_ttl, now=when)
        await uow.refresh_tokens.save(token)
        await uow.refresh_tokens.add(successor)
        await uow.commit()
    access = tokens.issue(member.id, member.role)
    return TokenPair(access.token, raw, access.expires_in)


async def log_out(cmd: LogOut, uow: UnitOfWork, *, now: dt.datetime | None = None) -> None:
    """Revoke the token's family (the whole session). Unknown or already revoked: nothing to do."""
    if not cmd.refresh_token or len(cmd.refresh_token) > REFRESH_TOKEN_MAX_LENGTH:
        return
    async with uow:
        token = await uow.refresh_tokens.get_by_hash(hash_token(cmd.refresh_token))
        if token is None:
            return
        await uow.refresh_tokens.revoke_family(token.family_id, now or utcnow())
        await uow.commit()
