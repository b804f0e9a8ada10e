"""CQRS projection: board and member events build the ``post_summaries`` read model.

The projection reaches the same state whatever the order and multiplicity of the events
(docs/CONVENTIONS.md "Failures of consumers"), by two rules:

- **the post's own fields** (board, title, byline, ``updated_at``) are a register guarded by the
  post version: PostCreated, PostUpdated and PostDeleted carry them whole, and only an event
  newer than the row's ``version`` overwrites them. ``created_at`` comes from PostCreated
  whenever it arrives, and a deleted post stays as a blanked tombstone that no event revives;
- **the comment count** is not a delta: it is the number of alive comments in the post's
  comment set (``post_summary_comments``, :mod:`chassis.child_sets`), where a deleted comment
  leaves a tombstone. Comment events do not move the version, so a PostUpdated replayed from the
  DLQ after a newer comment is still applied, and a comment event replayed after a newer one is
  still counted. A comment seen before its post is kept in the set; the post's row starts with
  the count of the set.

Member events change the byline of every summary of that member. The same code feeds the live
tables (the worker's consumer, deduplicated by the inbox) and fresh tables during a rebuild:
:data:`READ_MODEL` declares both to ``chassis.read_model``.

View counts are not events. The worker's flush copies them from ``posts.view_count`` (their
system of record) into the summaries, and a new summary starts from that value as well.

Every change reports the boards whose list it changed (``RETURNING board_id``), so the worker
can invalidate exactly those boards' cached first pages once the change is committed.

Only board's read model has rebuild hooks (:func:`before_swap`), because only board's reads the
write side (the ``authors`` copy and ``posts.view_count``): the topics alone do not rebuild it.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Table, bindparam, case, exists, func, select, update
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from board.adapters.tables import (
    POST_LIST_COUNTS,
    authors,
    post_list_counts,
    post_summaries,
    post_summary_comments,
    posts,
)
from board.domain.authors import WITHDRAWN_NICKNAME, Author, Byline, byline
from chassis import child_sets
from chassis.db import CompiledSelect, CompiledWrite
from chassis.messaging.envelope import Envelope
from chassis.read_model import ReadModel, RebuildRefused, Tables

# --- this consumer's view of the payloads (fields it does not use are ignored) ----------------


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PostCreatedView(_Payload):
    post_id: uuid.UUID
    board_id: uuid.UUID
    author_id: uuid.UUID | None
    title: str
    created_at: dt.datetime
    version: int


class PostUpdatedView(_Payload):
    post_id: uuid.UUID
    board_id: uuid.UUID
    author_id: uuid.UUID | None
    title: str
    updated_at: dt.datetime
    version: int


class PostDeletedView(_Payload):
    post_id: uuid.UUID
    board_id: uuid.UUID
    author_id: uuid.UUID | None = None
    version: int


class CommentChangedView(_Payload):
    post_id: uuid.UUID
    comment_id: uuid.UUID


class MemberNamedView(_Payload):
    member_id: uuid.UUID
    nickname: str
    #: 0 for an event from before member versioned its profile
    profile_version: int = 0


class MemberWithdrawnView(_Payload):
    member_id: uuid.UUID


class MemberWithdrawalView(_Payload):
    """MemberWithdrawalStarted / MemberWithdrawalCancelled: the semantic lock's mark, not the
    read model's business (the list shows the member until the saga anonymizes them)."""

    member_id: uuid.UUID
    saga_id: str = Field(min_length=1, max_length=64)


MEMBER_NAMED = ("MemberRegistered", "MemberProfileChanged")

#: The post's own fields: what a newer PostCreated, PostUpdated or PostDeleted overwrites.
_POST_FIELDS = ("board_id", "title", "author_id", "author_nickname", "updated_at")
#: The kind of the post's children in the comment set.
COMMENTS = "comments"

#: The boards whose post list a change touched.
Boards = frozenset[uuid.UUID]


def _boards(result: Result[tuple[uuid.UUID]]) -> Boards:
    return frozenset(result.scalars())


MEMBER_WITHDRAWN = "MemberWithdrawn"
MEMBER_WITHDRAWAL_STARTED = "MemberWithdrawalStarted"
MEMBER_WITHDRAWAL_CANCELLED = "MemberWithdrawalCancelled"


def _copied_nickname(member_id: uuid.UUID) -> ScalarSelect[str | None]:
    return select(authors.c.nickname).where(authors.c.member_id == member_id).scalar_subquery()


def author_key(member_id: uuid.UUID) -> str:
    """The lock key shared by a summary that copies this author's byline and by the event that
    changes the byline in every summary (``child_sets.lock_keys``): without it, a nickname change
    handled by another worker replica while a post is being created updates every row but the
    uncommitted new one, which then keeps the old nickname for good."""
    return f"author:{member_id}"


async def current_byline(session: AsyncSession, author_id: uuid.UUID | None) -> Byline:
    """The byline from the local author copy (a placeholder while the member is not known yet)."""
    if author_id is None:
        return byline(None, None)
    row = await _AUTHOR.first(session, member_id=author_id)
    return byline(author_id, Author(row.member_id, row.nickname, row.withdrawn) if row else None)


_AUTHOR = CompiledSelect(
    select(authors.c.member_id, authors.c.nickname, authors.c.withdrawn).where(
        authors.c.member_id == bindparam("member_id", type_=authors.c.member_id.type)
    )
)

#: The summary's columns given by the event (the counts come from SQL).
_ROW = (
    *("post_id", "board_id", "title", "author_id", "author_nickname", "created_at"),
    *("updated_at", "version", "deleted"),
)


def _param(table: Table, name: str) -> BindParameter[Any]:
    """A named parameter typed as ``table``'s column (typed, so PostgreSQL knows it in a
    SELECT list)."""
    return bindparam(name, type_=table.c[name].type)


class PostSummaryProjector:
    """Applies one event to the summaries, their comment set and the list counters (the live
    tables, or a rebuild's fresh copies: live name -> table)."""

    def __init__(self, table: Table, comments: Table, counts: Table = post_list_counts) -> None:
        self.table = table
        self.comments = comments
        #: by live name, as ``chassis.list_counts`` takes them
        self.tables: Tables = {
            post_summaries.name: table,
            post_summary_comments.name: comments,
            post_list_counts.name: counts,
        }
        self._handlers: dict[str, Callable[[AsyncSession, Envelope], Awaitable[Boards]]] = {
            "PostCreated": self._post_created,
            "PostUpdated": self._post_updated,
            "PostDeleted": self._post_deleted,
            "CommentAdded": self._comment_added,
            "CommentDeleted": self._comment_deleted,
            "MemberRegistered": self._member_named,
            "MemberProfileChanged": self._member_named,
            "MemberWithdrawn": self._member_withdrawn,
        }
        #: the hot statements, compiled at their first use (``chassis.db.CompiledWrite``)
        self._upserts: dict[tuple[bool, bool], CompiledWrite] = {}
        self._recount_comments: CompiledWrite | None = None

    async def apply(self, session: AsyncSession, env: Envelope) -> Boards:
        """Apply ``env``; returns the boards whose list it changed (none for an event the list
        does not depend on, or one that changes nothing).
        Raises ``pydantic.ValidationError`` for a malformed payload (the consumer dead-letters it)."""
        handler = self._handlers.get(env.type)
        if handler is None:
            return frozenset()
        return await handler(session, env)

    # -- board events --------------------------------------------------------------------------

    async def _upsert_post(
        self, session: AsyncSession, row: dict[str, Any], *, created: bool = False
    ) -> Boards:
        """Insert the summary ``row`` (its comment count from the comment set, its view count
        from ``posts`` unless it is a tombstone), or merge it into the existing one: the post's
        own fields only if the event is newer than the row and the row is no tombstone;
        ``created_at`` from PostCreated always; ``deleted`` once true stays. The list counters
        follow the row in the same statement (``chassis.list_counts``).
        """
        # a comment event of this post waits until the row exists with its count, or vice versa
        await child_sets.lock_parents(session, self.comments, [row["post_id"]])
        upsert = self._upsert(deleted=row["deleted"], created=created)
        return _boards(await upsert.execute(session, **row))

    def _upsert(self, *, deleted: bool, created: bool) -> CompiledWrite:
        """The statement of :meth:`_upsert_post` for one shape (a tombstone or not, PostCreated
        or not), with a named parameter per column of the row; compiled once per shape and
        tables, since SQLAlchemy compiles an ``ON CONFLICT`` again at every execution."""
        found = self._upserts.get((deleted, created))
        if found is not None:
            return found
        t = self.table
        post_id = _param(t, "post_id")
        row: dict[str, Any] = {name: _param(t, name) for name in _ROW}
        row["comment_count"] = child_sets.tally(self.comments, COMMENTS, post_id)
        # a tombstone's view count is the event's (0); a post's comes from ``posts``
        row["view_count"] = _param(t, "view_count") if deleted else self._views(post_id)
        counted = POST_LIST_COUNTS.insert_row(self.tables, row, lambda s: s.c.post_id == post_id)
        stmt = counted.write
        newer = (t.c.version < stmt.excluded.version) & ~t.c.deleted
        set_: dict[str, Any] = {
            name: case((newer, stmt.excluded[name]), else_=t.c[name]) for name in _POST_FIELDS
        }
        if deleted:  # the tombstone blanks the row whatever it held
            set_ = {name: stmt.excluded[name] for name in _POST_FIELDS}
        set_["version"] = func.greatest(t.c.version, stmt.excluded.version)
        set_["deleted"] = t.c.deleted | stmt.excluded.deleted
        set_["view_count"] = func.greatest(t.c.view_count, stmt.excluded.view_count)
        if created:
            set_["created_at"] = stmt.excluded.created_at
        write = stmt.on_conflict_do_update(index_elements=[t.c.post_id], set_=set_)
        found = self._upserts[(deleted, created)] = CompiledWrite(
            POST_LIST_COUNTS.statement(self.tables, counted.before, write, returning=["board_id"])
        )
        return found

    @staticmethod
    def _views(post_id: ColumnElement[Any]) -> ScalarSelect[int]:
        return (
            select(func.coalesce(func.max(posts.c.view_count), 0))
            .where(posts.c.id == post_id)
            .scalar_subquery()
        )

    async def _post_created(self, session: AsyncSession, env: Envelope) -> Boards:
        e = PostCreatedView.model_validate(env.data)
        if e.author_id is not None:
            await child_sets.lock_keys(session, self.comments, [author_key(e.author_id)])
        shown = await current_byline(session, e.author_id)
        row = {
            "post_id": e.post_id,
            "board_id": e.board_id,
            "title": e.title,
            "author_id": shown.id,
            "author_nickname": shown.nickname,
            "created_at": e.created_at,
            "updated_at": e.created_at,
            "version": e.version,
            "deleted": False,
        }
        return await self._upsert_post(session, row, created=True)

    async def _post_updated(self, session: AsyncSession, env: Envelope) -> Boards:
        e = PostUpdatedView.model_validate(env.data)
        if e.author_id is not None:
            await child_sets.lock_keys(session, self.comments, [author_key(e.author_id)])
        shown = await current_byline(session, e.author_id)
        # Normally the row exists; if this event overtook PostCreated, it starts the row and
        # PostCreated sets the creation time when it comes.
        row = {
            "post_id": e.post_id,
            "board_id": e.board_id,
            "title": e.title,
            "author_id": shown.id,
            "author_nickname": shown.nickname,
            "created_at": e.updated_at,
            "updated_at": e.updated_at,
            "version": e.version,
            "deleted": False,
        }
        return await self._upsert_post(session, row)

    async def _post_deleted(self, session: AsyncSession, env: Envelope) -> Boards:
        e = PostDeletedView.model_validate(env.data)
        # A tombstone: hidden from every list, blanked, and final whatever arrives later.
        row = {
            "post_id": e.post_id,
            "board_id": e.board_id,
            "title": "",
            "author_id": None,
            "author_nickname": WITHDRAWN_NICKNAME,
            "view_count": 0,
            "created_at": env.time,
            "updated_at": env.time,
            "version": e.version,
            "deleted": True,
        }
        return await self._upsert_post(session, row)

    async def _comment_added(self, session: AsyncSession, env: Envelope) -> Boards:
        return await self._note_comment(session, CommentChangedView.model_validate(env.data), True)

    async def _comment_deleted(self, session: AsyncSession, env: Envelope) -> Boards:
        return await self._note_comment(session, CommentChangedView.model_validate(env.data), False)

    async def _note_comment(
        self, session: AsyncSession, e: CommentChangedView, alive: bool
    ) -> Boards:
        """Merge the comment into the post's set, then recount; the board is reported only
        when the count really changed (a duplicate or a stale event changes nothing)."""
        comment = child_sets.Child(COMMENTS, str(e.comment_id), e.post_id, alive)
        await child_sets.record(session, self.comments, [comment])
        recount = self._recount_comments
        if recount is None:
            t = self.table
            post_id = _param(t, "post_id")
            count = child_sets.tally(self.comments, COMMENTS, post_id)
            recount = self._recount_comments = CompiledWrite(
                update(t)
                .where(t.c.post_id == post_id, t.c.comment_count != count)
                .values(comment_count=count)
                .returning(t.c.board_id)
            )
        return _boards(await recount.execute(session, post_id=e.post_id))

    # -- member events -------------------------------------------------------------------------

    async def _member_named(self, session: AsyncSession, env: Envelope) -> Boards:
        e = MemberNamedView.model_validate(env.data)
        await child_sets.lock_keys(session, self.comments, [author_key(e.member_id)])
        t = self.table
        return _boards(
            await session.execute(
                update(t)
                .where(t.c.author_id == e.member_id)
                # the author copy is version-checked, so it holds the newest nickname even
                # when a rebuild replays an older event after a newer one
                .values(author_nickname=func.coalesce(_copied_nickname(e.member_id), e.nickname))
                .returning(t.c.board_id)
            )
        )

    async def _member_withdrawn(self, session: AsyncSession, env: Envelope) -> Boards:
        e = MemberWithdrawnView.model_validate(env.data)
        await child_sets.lock_keys(session, self.comments, [author_key(e.member_id)])
        # the posts leave the author's list: the counters follow in the same statement
        counted = POST_LIST_COUNTS.update_rows(self.tables, lambda s: s.c.author_id == e.member_id)
        write = counted.write.values(author_id=None, author_nickname=WITHDRAWN_NICKNAME)
        return _boards(
            await POST_LIST_COUNTS.execute(
                session, self.tables, counted.before, write, returning=["board_id"]
            )
        )


async def copy_view_counts(
    session: AsyncSession, table: Table, post_ids: Sequence[uuid.UUID]
) -> Boards:
    """Set the summaries' view counts to the posts' totals (called by the view-count flush,
    which holds ``chassis.read_model.exclude_rebuild`` first)."""
    if not post_ids:
        return frozenset()
    return _boards(
        await session.execute(
            update(table)
            .where(table.c.post_id == posts.c.id, table.c.post_id.in_(list(post_ids)))
            .values(view_count=posts.c.view_count)
            .returning(table.c.board_id)
        )
    )


# --- the read model, declared to chassis.read_model (live projector and rebuild) -------------

#: The inbox consumer of the projector, which is also its consumer group.
CONSUMER = "board-projector"
#: One consumer reads both topics, so a nickname and the summaries showing it change together.
TOPICS = ("board.events", "member.events")


async def apply(session: AsyncSession, tables: Tables, env: Envelope) -> Boards:
    """Project ``env`` into ``tables`` (live name -> the live table or its fresh copy); returns
    the boards whose list changed. Raises ``pydantic.ValidationError`` for a malformed payload."""
    projector = _projector(
        tables[post_summaries.name],
        tables[post_summary_comments.name],
        tables[post_list_counts.name],
    )
    return await projector.apply(session, env)


@functools.lru_cache(maxsize=8)
def _projector(table: Table, comments: Table, counts: Table) -> PostSummaryProjector:
    """One projector per set of tables (the live ones; each rebuild's fresh ones), so its
    compiled statements are kept."""
    return PostSummaryProjector(table, comments, counts)


async def before_swap(session: AsyncSession, fresh: Tables, started_at: dt.datetime) -> None:
    """In the rebuild's swap transaction: copy the view counts from ``posts`` (they are not
    events), then refuse the swap with ``RebuildRefused`` if a live post created before the
    rebuild started (``started_at``, UTC) is missing from the fresh table: the topics no
    longer hold its history (retention), or the outbox relay is behind."""
    summaries = fresh[post_summaries.name]
    await session.execute(
        update(summaries)
        .where(summaries.c.post_id == posts.c.id)
        .values(view_count=posts.c.view_count)
    )
    missing = await session.scalar(
        select(func.count())
        .select_from(posts)
        .where(
            posts.c.deleted_at.is_(None),
            posts.c.created_at < started_at,
            ~exists().where(summaries.c.post_id == posts.c.id),
        )
    )
    if missing:
        raise RebuildRefused(
            f"{missing} live posts are missing from the replayed events "
            "(the topics' retention dropped their history, or the outbox relay is "
            "behind); the live read model was kept"
        )


#: The post list. Its ``after_swap`` (every cached first page invalidated) needs Redis, so
#: ``board.bootstrap.read_model`` binds it.
READ_MODEL = ReadModel(
    name=post_summaries.name,
    consumer=CONSUMER,
    topics=TOPICS,
    tables=(post_summaries, post_summary_comments, post_list_counts),
    apply=apply,
    counts=(POST_LIST_COUNTS,),
    before_swap=before_swap,
)
