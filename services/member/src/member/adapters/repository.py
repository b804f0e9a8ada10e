"""Repository: members, refresh tokens and point transfers loaded into and saved from domain objects."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any, NoReturn

from sqlalchemy import ARRAY, Row, Table, any_, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from chassis.db import CompiledSelect, CompiledWrite
from member.adapters.tables import members, point_transfers, refresh_tokens
from member.domain import errors
from member.domain.identity import canonical
from member.domain.model import Member, Role, Status
from member.domain.points import PointTransfer
from member.domain.sessions import RefreshToken


def raise_duplicate(exc: IntegrityError) -> NoReturn:
    """Translate a unique-index violation (a race the pre-checks could not see) into a domain error."""
    message = str(exc.orig)
    if "ux_members_email_canonical" in message:
        raise errors.DuplicateEmail("this email is already registered") from exc
    if "ux_members_nickname_canonical" in message:
        raise errors.DuplicateNickname("this nickname is already taken") from exc
    raise exc


#: The columns :func:`_member_values` gives (all but the id).
_MEMBER_COLUMNS = (
    *("email", "nickname", "email_canonical", "nickname_canonical", "password_hash", "role"),
    *("status", "points", "withdrawal_saga_id", "profile_version", "created_at", "updated_at"),
)


def _member_values(member: Member) -> dict[str, Any]:
    return {
        "email": member.email,
        "nickname": member.nickname,
        "email_canonical": member.email_canonical,
        "nickname_canonical": member.nickname_canonical,
        "password_hash": member.password_hash,
        "role": member.role.value,
        "status": member.status.value,
        "points": member.points,
        "withdrawal_saga_id": member.withdrawal_saga_id,
        "profile_version": member.profile_version,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    }


def _to_member(row: Row[Any]) -> Member:
    return Member(
        id=row.id,
        email=row.email,
        nickname=row.nickname,
        email_canonical=row.email_canonical,
        nickname_canonical=row.nickname_canonical,
        password_hash=row.password_hash,
        role=Role(row.role),
        status=Status(row.status),
        points=row.points,
        withdrawal_saga_id=row.withdrawal_saga_id,
        profile_version=row.profile_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlMemberRepository:
    """Members by id, or by text identity (``identity.canonical``) of an email or a nickname:
    the lookups take the text in any form (typed case, NFD, padded) and compare its canonical
    form with the ``*_canonical`` columns, the same keys the unique indexes hold."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, member: Member) -> None:
        try:
            await self.session.execute(
                members.insert().values(id=member.id, **_member_values(member))
            )
        except IntegrityError as exc:
            raise_duplicate(exc)

    async def get(self, member_id: uuid.UUID, *, for_update: bool = False) -> Member | None:
        row = await _GET_MEMBER[for_update].first(self.session, id=member_id)
        return _to_member(row) if row else None

    async def get_by_email(self, email: str) -> Member | None:
        query = select(members).where(members.c.email_canonical == canonical(email))
        row = (await self.session.execute(query)).first()
        return _to_member(row) if row else None

    async def lock_many(self, member_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Member]:
        rows = await _LOCK_MEMBERS.all(self.session, ids=list(member_ids))
        return {row.id: _to_member(row) for row in rows}

    async def email_taken(self, email: str) -> bool:
        found = await self.session.scalar(
            select(members.c.id).where(members.c.email_canonical == canonical(email))
        )
        return found is not None

    async def nickname_taken(self, nickname: str, *, other_than: uuid.UUID | None = None) -> bool:
        query = select(members.c.id).where(members.c.nickname_canonical == canonical(nickname))
        if other_than is not None:
            query = query.where(members.c.id != other_than)
        return await self.session.scalar(query) is not None

    async def save(self, member: Member) -> None:
        try:
            await _SAVE_MEMBER.execute(self.session, id=member.id, **_member_values(member))
        except IntegrityError as exc:
            raise_duplicate(exc)


def _to_token(row: Row[Any]) -> RefreshToken:
    return RefreshToken(
        id=row.id,
        member_id=row.member_id,
        family_id=row.family_id,
        parent_id=row.parent_id,
        token_hash=row.token_hash,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
    )


class SqlRefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: RefreshToken) -> None:
        await self.session.execute(
            refresh_tokens.insert().values(
                id=token.id,
                member_id=token.member_id,
                family_id=token.family_id,
                parent_id=token.parent_id,
                token_hash=token.token_hash,
                issued_at=token.issued_at,
                expires_at=token.expires_at,
                used_at=token.used_at,
                revoked_at=token.revoked_at,
            )
        )

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        row = (
            await self.session.execute(
                select(refresh_tokens)
                .where(refresh_tokens.c.token_hash == token_hash)
                .with_for_update()
            )
        ).first()
        return _to_token(row) if row else None

    async def save(self, token: RefreshToken) -> None:
        await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.id == token.id)
            .values(used_at=token.used_at, revoked_at=token.revoked_at)
        )

    async def revoke_family(self, family_id: uuid.UUID, now: dt.datetime) -> int:
        result = await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def revoke_all_for_member(self, member_id: uuid.UUID, now: dt.datetime) -> int:
        result = await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.member_id == member_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class SqlPointTransferRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, saga_id: str) -> PointTransfer | None:
        row = await _GET_TRANSFER.first(self.session, saga_id=saga_id)
        if row is None:
            return None
        return PointTransfer(
            saga_id=row.saga_id,
            from_member_id=row.from_member_id,
            to_member_id=row.to_member_id,
            amount=row.amount,
            question_id=row.question_id,
            transferred_at=row.transferred_at,
            refunded_at=row.refunded_at,
        )

    async def add(self, transfer: PointTransfer) -> None:
        await _ADD_TRANSFER.execute(
            self.session,
            saga_id=transfer.saga_id,
            from_member_id=transfer.from_member_id,
            to_member_id=transfer.to_member_id,
            amount=transfer.amount,
            question_id=transfer.question_id,
            transferred_at=transfer.transferred_at,
            refunded_at=transfer.refunded_at,
        )

    async def save(self, transfer: PointTransfer) -> None:
        await self.session.execute(
            update(point_transfers)
            .where(point_transfers.c.saga_id == transfer.saga_id)
            .values(refunded_at=transfer.refunded_at)
        )


# The statements of a point transfer (a saga step) and of a member's load and save, compiled
# once (``chassis.db.CompiledWrite``): each runs for every saga that pays a bounty.
def _param(table: Table, name: str) -> BindParameter[Any]:
    return bindparam(name, type_=table.c[name].type)


_MEMBER_BY_ID = select(members).where(members.c.id == _param(members, "id"))
#: by ``for_update``
_GET_MEMBER = {
    False: CompiledSelect(_MEMBER_BY_ID),
    True: CompiledSelect(_MEMBER_BY_ID.with_for_update()),
}
#: locked in id order, so two transfers between the same members cannot deadlock
_LOCK_MEMBERS = CompiledSelect(
    select(members)
    .where(members.c.id == any_(bindparam("ids", type_=ARRAY(members.c.id.type))))
    .order_by(members.c.id)
    .with_for_update()
)
_SAVE_MEMBER = CompiledWrite(
    update(members)
    .where(members.c.id == _param(members, "id"))
    .values({n: _param(members, n) for n in _MEMBER_COLUMNS})
)
_GET_TRANSFER = CompiledSelect(
    select(point_transfers)
    .where(point_transfers.c.saga_id == _param(point_transfers, "saga_id"))
    .with_for_update()
)
_ADD_TRANSFER = CompiledWrite(
    point_transfers.insert().values(
        {c.name: _param(point_transfers, c.name) for c in point_transfers.c}
    )
)
