"""Use cases: log in, refresh (rotating refresh tokens with reuse detection) and log out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from member.domain import errors
from member.domain.commands import LogIn, LogOut, RefreshSession
from member.domain.identity import canonical
from member.domain.model import utcnow
from member.domain.sessions import REFRESH_TOKEN_MAX_LENGTH, RefreshToken, hash_token
from member.service_layer.ports import (
    AccessTokenIssuer,
    AttemptThrottle,
    PasswordHasher,
    UnitOfWork,
)

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
