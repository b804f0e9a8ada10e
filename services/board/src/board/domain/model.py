"""Aggregates: a board decides who may post in it; a post (with its comments) decides who may change it.

Every change to a post or to one of its comments raises the post's ``version`` and records a
domain event carrying that version, so the read model can apply the events in order and
ignore an older one. The aggregates never touch a database or a clock: the caller passes ``now``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field

from board.domain.errors import InvalidValue, NotPermitted
from board.domain.events import (
    CommentAdded,
    CommentDeleted,
    PostCreated,
    PostDeleted,
    PostEvent,
    PostUpdated,
)

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
BOARD_NAME_MAX = 50
BOARD_DESCRIPTION_MAX = 500
TITLE_MAX = 200
CONTENT_MAX = 20_000
COMMENT_MAX = 2_000


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: the verified caller."""

    id: uuid.UUID
    is_admin: bool = False


def checked_text(label: str, value: str, *, max_length: int, min_length: int = 1) -> str:
    """Return ``value`` if it fits the limits; PostgreSQL cannot store NUL or lone surrogates."""
    if not min_length <= len(value) <= max_length:
        raise InvalidValue(f"{label} must be {min_length} to {max_length} characters")
    if min_length > 0 and not value.strip():
        raise InvalidValue(f"{label} must not be blank")
    if "\x00" in value:
        raise InvalidValue(f"{label} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValue(f"{label} must be valid Unicode text") from exc
    return value


def checked_slug(slug: str) -> str:
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidValue(
            "slug must be 2 to 40 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    return slug


@dataclass
class Board:
    """A board; ``admin_only`` boards (the notice board) take posts from admins only."""

    id: uuid.UUID
    slug: str
    name: str
    description: str
    created_at: dt.datetime
    admin_only: bool = False

    @classmethod
    def open(
        cls,
        actor: Actor,
        *,
        slug: str,
        name: str,
        description: str,
        now: dt.datetime,
        admin_only: bool = False,
    ) -> Board:
        """Only an admin opens a board."""
        if not actor.is_admin:
            raise NotPermitted("only an admin may open a board")
        return cls(
            id=uuid.uuid4(),
            slug=checked_slug(slug),
            name=checked_text("name", name, max_length=BOARD_NAME_MAX),
            description=checked_text(
                "description", description, max_length=BOARD_DESCRIPTION_MAX, min_length=0
            ),
            created_at=now,
            admin_only=admin_only,
        )

    def check_may_post(self, actor: Actor) -> None:
        if self.admin_only and not actor.is_admin:
            raise NotPermitted(f"only an admin may post on the {self.slug} board")


@dataclass
class Comment:
    """A comment on a post; changed only through its post, which keeps the version."""

    id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID | None
    content: str
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def may_be_changed_by(self, actor: Actor) -> bool:
        return actor.is_admin or (self.author_id is not None and self.author_id == actor.id)


@dataclass
class Post:
    """Aggregate root: a post and the rules for its comments. Deletion is soft."""

    id: uuid.UUID
    board_id: uuid.UUID
    author_id: uuid.UUID | None
    title: str
    content: str
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int = 1
    comment_count: int = 0
    view_count: int = 0
    deleted_at: dt.datetime | None = None
    events: list[PostEvent] = field(default_factory=list, compare=False, repr=False)

    # -- creation and the post itself ---------------------------------------------------------

    @classmethod
    def write(
        cls, board: Board, author: Actor, *, title: str, content: str, now: dt.datetime
    ) -> Post:
        """A new post on ``board`` by ``author``, if the board takes posts from them."""
        board.check_may_post(author)
        post = cls(
            id=uuid.uuid4(),
            board_id=board.id,
            author_id=author.id,
            title=checked_text("title", title, max_length=TITLE_MAX),
            content=checked_text("content", content, max_length=CONTENT_MAX),
            created_at=now,
            updated_at=now,
        )
        post.events.append(
            PostCreated(
                post_id=post.id,
                board_id=post.board_id,
                author_id=post.author_id,
                title=post.title,
                created_at=post.created_at,
                version=post.version,
            )
        )
        return post

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def may_be_changed_by(self, actor: Actor) -> bool:
        """The author or an admin; an anonymized post (no author) only by an admin."""
        return actor.is_admin or (self.author_id is not None and self.author_id == actor.id)

    def _check_may_change(self, actor: Actor, what: str) -> None:
        if not self.may_be_changed_by(actor):
            raise NotPermitted(f"only the author or an admin may change this {what}")

    def edit(
        self,
        actor: Actor,
        *,
        now: dt.datetime,
        title: str | None = None,
        content: str | None = None,
    ) -> None:
        self._check_may_change(actor, "post")
        new_title = (
            self.title if title is None else checked_text("title", title, max_length=TITLE_MAX)
        )
        new_content = (
            self.content
            if content is None
            else checked_text("content", content, max_length=CONTENT_MAX)
        )
        if (new_title, new_content) == (self.title, self.content):
            return  # nothing changed: no new version, no event
        self.title, self.content, self.updated_at = new_title, new_content, now
        self._record_update()

    def delete(self, actor: Actor, comments: list[Comment], *, now: dt.datetime) -> None:
        """Soft-delete the post; its live comments go with it (each one announced)."""
        self._check_may_change(actor, "post")
        for comment in comments:
            if comment.post_id == self.id and not comment.is_deleted:
                self._drop_comment(comment, now)
        self.deleted_at = now
        self.version += 1
        self.events.append(
            PostDeleted(
                post_id=self.id,
                board_id=self.board_id,
                author_id=self.author_id,
                version=self.version,
            )
        )

    # -- comments ------------------------------------------------------------------------------

    def add_comment(self, author: Actor, *, content: str, now: dt.datetime) -> Comment:
        comment = Comment(
            id=uuid.uuid4(),
            post_id=self.id,
            author_id=author.id,
            content=checked_text("content", content, max_length=COMMENT_MAX),
            created_at=now,
            updated_at=now,
        )
        self.comment_count += 1
        self.version += 1
        self.events.append(
            CommentAdded(
                comment_id=comment.id,
                post_id=self.id,
                author_id=comment.author_id,
                version=self.version,
            )
        )
        return comment

    def edit_comment(
        self, comment: Comment, actor: Actor, *, content: str, now: dt.datetime
    ) -> None:
        """Editing a comment changes nothing the post list shows, so it publishes no event."""
        if not comment.may_be_changed_by(actor):
            raise NotPermitted("only the author or an admin may change this comment")
        comment.content = checked_text("content", content, max_length=COMMENT_MAX)
        comment.updated_at = now

    def remove_comment(self, comment: Comment, actor: Actor, *, now: dt.datetime) -> None:
        if not comment.may_be_changed_by(actor):
            raise NotPermitted("only the author or an admin may change this comment")
        self._drop_comment(comment, now)

    def _drop_comment(self, comment: Comment, now: dt.datetime) -> None:
        comment.deleted_at = now
        self.comment_count = max(0, self.comment_count - 1)
        self.version += 1
        self.events.append(
            CommentDeleted(
                comment_id=comment.id,
                post_id=self.id,
                author_id=comment.author_id,
                version=self.version,
            )
        )

    # -- member withdrawal (saga steps) ----------------------------------------------------------

    def anonymize_author(self) -> None:
        """The author withdraws: the post keeps its content but no longer names them."""
        self.author_id = None
        if not self.is_deleted:
            self._record_update()

    def restore_author(self, member_id: uuid.UUID) -> None:
        """Compensation: give the post back to the member the saga took it from."""
        self.author_id = member_id
        if not self.is_deleted:
            self._record_update()

    def _record_update(self) -> None:
        self.version += 1
        self.events.append(
            PostUpdated(
                post_id=self.id,
                board_id=self.board_id,
                author_id=self.author_id,
                title=self.title,
                updated_at=self.updated_at,
                version=self.version,
            )
        )
