"""Domain events: what happened to a post, recorded by the aggregate and published as integration events.

The field names are the event bodies of ``board.events`` (docs/CONVENTIONS.md). ``version`` is
the post aggregate's version after the change, so projections can ignore an older event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class PostEvent:
    """Base of every post event; its fields are the JSON body (``chassis.messaging.envelope.event_data``)."""

    post_id: uuid.UUID
    version: int

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, kw_only=True)
class PostCreated(PostEvent):
    board_id: uuid.UUID
    author_id: uuid.UUID | None
    title: str
    created_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class PostUpdated(PostEvent):
    board_id: uuid.UUID
    author_id: uuid.UUID | None
    title: str
    updated_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class PostDeleted(PostEvent):
    board_id: uuid.UUID
    author_id: uuid.UUID | None


@dataclass(frozen=True, kw_only=True)
class CommentAdded(PostEvent):
    comment_id: uuid.UUID
    author_id: uuid.UUID | None


@dataclass(frozen=True, kw_only=True)
class CommentDeleted(PostEvent):
    comment_id: uuid.UUID
    author_id: uuid.UUID | None
