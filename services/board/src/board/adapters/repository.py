"""Repository: load and save the board aggregates and the local author copy with SQLAlchemy Core."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Row, and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from board.adapters.tables import author_anonymizations, authors, boards, comments, posts
from board.domain.authors import Author
from board.domain.model import Board, Comment, Post
from chassis import author_lock


def _board(row: Row[Any]) -> Board:
    return Board(
        id=row.id,
        slug=row.slug,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        admin_only=row.admin_only,
    )


def _post(row: Row[Any]) -> Post:
    return Post(
        id=row.id,
        board_id=row.board_id,
        author_id=row.author_id,
        title=row.title,
        content=row.content,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        comment_count=row.comment_count,
        view_count=row.view_count,
        deleted_at=row.deleted_at,
    )


def _comment(row: Row[Any]) -> Comment:
    return Comment(
        id=row.id,
        post_id=row.post_id,
        author_id=row.author_id,
        content=row.content,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


class BoardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, board_id: uuid.UUID) -> Board | None:
        row = (await self.session.execute(select(boards).where(boards.c.id == board_id))).first()
        return _board(row) if row else None

    async def add(self, board: Board) -> bool:
        """Insert the board; False when its slug is already taken (also by a concurrent insert)."""
        inserted = (
            await self.session.execute(
                insert(boards)
                .values(
                    id=board.id,
                    slug=board.slug,
                    name=board.name,
                    description=board.description,
                    admin_only=board.admin_only,
                    created_at=board.created_at,
                )
                .on_conflict_do_nothing(index_elements=["slug"])
                .returning(boards.c.id)
            )
        ).first()
        return inserted is not None


class PostRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, post_id: uuid.UUID, *, for_update: bool = False) -> Post | None:
        """The post, deleted or not. ``for_update`` locks it: changes to one post are serialized,
        so its versions never collide."""
        query = select(posts).where(posts.c.id == post_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _post(row) if row else None

    async def by_author(self, member_id: uuid.UUID) -> list[Post]:
        """Every post of the member, deleted or not, locked for the change."""
        rows = await self.session.execute(
            select(posts)
            .where(posts.c.author_id == member_id)
            .order_by(posts.c.id)
            .with_for_update()
        )
        return [_post(r) for r in rows]

    async def by_ids(self, post_ids: Iterable[uuid.UUID]) -> list[Post]:
        rows = await self.session.execute(
            select(posts)
            .where(posts.c.id.in_(list(post_ids)))
            .order_by(posts.c.id)
            .with_for_update()
        )
        return [_post(r) for r in rows]

    async def add(self, post: Post) -> None:
        await self.session.execute(
            posts.insert().values(
                id=post.id,
                board_id=post.board_id,
                author_id=post.author_id,
                title=post.title,
                content=post.content,
                comment_count=post.comment_count,
                view_count=post.view_count,
                version=post.version,
                created_at=post.created_at,
                updated_at=post.updated_at,
                deleted_at=post.deleted_at,
            )
        )

    async def save(self, post: Post) -> None:
        """Write back what the aggregate may change (view counts are added by the flush only)."""
        await self.session.execute(
            update(posts)
            .where(posts.c.id == post.id)
            .values(
                author_id=post.author_id,
                title=post.title,
                content=post.content,
                comment_count=post.comment_count,
                version=post.version,
                updated_at=post.updated_at,
                deleted_at=post.deleted_at,
            )
        )

    async def add_views(self, counts: Mapping[uuid.UUID, int]) -> None:
        for post_id, count in sorted(counts.items()):
            await self.session.execute(
                update(posts)
                .where(posts.c.id == post_id)
                .values(view_count=posts.c.view_count + count)
            )


class CommentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, comment_id: uuid.UUID) -> Comment | None:
        row = (
            await self.session.execute(
                select(comments).where(comments.c.id == comment_id).with_for_update()
            )
        ).first()
        return _comment(row) if row else None

    async def live_on_post(self, post_id: uuid.UUID) -> list[Comment]:
        rows = await self.session.execute(
            select(comments)
            .where(comments.c.post_id == post_id, comments.c.deleted_at.is_(None))
            .order_by(comments.c.created_at, comments.c.id)
            .with_for_update()
        )
        return [_comment(r) for r in rows]

    async def add(self, comment: Comment) -> None:
        await self.session.execute(
            comments.insert().values(
                id=comment.id,
                post_id=comment.post_id,
                author_id=comment.author_id,
                content=comment.content,
                created_at=comment.created_at,
                updated_at=comment.updated_at,
                deleted_at=comment.deleted_at,
            )
        )

    async def save(self, comment: Comment) -> None:
        await self.session.execute(
            update(comments)
            .where(comments.c.id == comment.id)
            .values(
                author_id=comment.author_id,
                content=comment.content,
                updated_at=comment.updated_at,
                deleted_at=comment.deleted_at,
            )
        )

    async def anonymize(self, member_id: uuid.UUID) -> list[uuid.UUID]:
        """Drop the author from every comment of the member; returns the comments changed."""
        rows = await self.session.execute(
            update(comments)
            .where(comments.c.author_id == member_id)
            .values(author_id=None)
            .returning(comments.c.id)
        )
        return [r.id for r in rows]

    async def restore(self, comment_ids: list[uuid.UUID], member_id: uuid.UUID) -> int:
        """Give the comments back to the member (only those still without an author)."""
        if not comment_ids:
            return 0
        rows = await self.session.execute(
            update(comments)
            .where(comments.c.id.in_(comment_ids), comments.c.author_id.is_(None))
            .values(author_id=member_id)
            .returning(comments.c.id)
        )
        return len(rows.all())


class AuthorRepository(author_lock.AuthorCopy):
    """The local copy of member nicknames, with the semantic lock (``chassis.author_lock``)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, authors)

    async def get(self, member_id: uuid.UUID | None) -> Author | None:
        if member_id is None:
            return None
        row = (
            await self.session.execute(select(authors).where(authors.c.member_id == member_id))
        ).first()
        return Author(row.member_id, row.nickname, row.withdrawn) if row else None


class AnonymizationRepository:
    """What ``AnonymizeAuthor`` changed, per saga, so that ``RestoreAuthor`` undoes exactly that."""

    POST = "post"
    COMMENT = "comment"

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        saga_id: str,
        member_id: uuid.UUID,
        *,
        post_ids: list[uuid.UUID],
        comment_ids: list[uuid.UUID],
        now: dt.datetime,
    ) -> None:
        values = [
            {
                "saga_id": saga_id,
                "entity": entity,
                "entity_id": i,
                "member_id": member_id,
                "created_at": now,
            }
            for entity, ids in ((self.POST, post_ids), (self.COMMENT, comment_ids))
            for i in ids
        ]
        if values:
            await self.session.execute(
                insert(author_anonymizations).values(values).on_conflict_do_nothing()
            )

    async def of_saga(
        self, saga_id: str, member_id: uuid.UUID
    ) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """(post ids, comment ids) the saga anonymized for the member."""
        rows = await self.session.execute(
            select(author_anonymizations.c.entity, author_anonymizations.c.entity_id).where(
                and_(
                    author_anonymizations.c.saga_id == saga_id,
                    author_anonymizations.c.member_id == member_id,
                )
            )
        )
        found = rows.all()
        return (
            [r.entity_id for r in found if r.entity == self.POST],
            [r.entity_id for r in found if r.entity == self.COMMENT],
        )

    async def forget(self, saga_id: str, member_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(author_anonymizations).where(
                author_anonymizations.c.saga_id == saga_id,
                author_anonymizations.c.member_id == member_id,
            )
        )
