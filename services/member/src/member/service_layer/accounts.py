"""Use cases: sign up, update profile and seed the admin account (each one unit of work)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

from member.domain import errors
from member.domain.commands import ChangeProfile, RegisterMember
from member.domain.model import (
    Member,
    Role,
    check_password_policy,
    normalize_email,
    normalize_nickname,
    utcnow,
)
from member.service_layer.ports import AttemptThrottle, PasswordHasher, UnitOfWork
from member.service_layer.publishing import publish_events

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
