"""Unit of Work: one transaction over the member database, with its repositories, outbox and inbox."""

from __future__ import annotations

from typing import Self

from sqlalchemy.exc import IntegrityError

from chassis.db import UnitOfWork
from member.adapters.idempotency import SqlIdempotencyStore
from member.adapters.repository import (
    SqlMemberRepository,
    SqlPointTransferRepository,
    SqlRefreshTokenRepository,
    raise_duplicate,
)


class MemberUnitOfWork(UnitOfWork):
    """``async with uow: ...; await uow.commit()`` — rolls back unless committed."""

    members: SqlMemberRepository
    refresh_tokens: SqlRefreshTokenRepository
    transfers: SqlPointTransferRepository
    idempotency: SqlIdempotencyStore

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.members = SqlMemberRepository(self.session)
        self.refresh_tokens = SqlRefreshTokenRepository(self.session)
        self.transfers = SqlPointTransferRepository(self.session)
        self.idempotency = SqlIdempotencyStore(self.session)
        return self

    async def commit(self) -> None:
        try:
            await super().commit()
        except IntegrityError as exc:
            raise_duplicate(exc)
