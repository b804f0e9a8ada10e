"""Unit of Work: one transaction per use case, with the board repositories, the outbox and the inbox."""

from __future__ import annotations

from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from board.adapters.repository import (
    AnonymizationRepository,
    AuthorRepository,
    BoardRepository,
    CommentRepository,
    PostRepository,
)
from chassis.db import UnitOfWork

#: CloudEvent ``source`` of everything the board service publishes.
SOURCE = "board"


class BoardUnitOfWork(UnitOfWork):
    """``async with uow: ...; await uow.commit()``; rolls back unless committed."""

    boards: BoardRepository
    posts: PostRepository
    comments: CommentRepository
    authors: AuthorRepository
    anonymizations: AnonymizationRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(session_factory, source=SOURCE)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.boards = BoardRepository(self.session)
        self.posts = PostRepository(self.session)
        self.comments = CommentRepository(self.session)
        self.authors = AuthorRepository(self.session)
        self.anonymizations = AnonymizationRepository(self.session)
        return self
