"""API schemas: request bodies validated at the edge (limits, types) and the public response shapes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from board.domain.model import (
    BOARD_DESCRIPTION_MAX,
    BOARD_NAME_MAX,
    COMMENT_MAX,
    CONTENT_MAX,
    TITLE_MAX,
)


def _text(min_length: int, max_length: int) -> object:
    return StringConstraints(min_length=min_length, max_length=max_length)


# NUL and lone surrogates never get here: the chassis input guard refuses them for every field.
Slug = Annotated[
    str, StringConstraints(min_length=2, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")
]
BoardName = Annotated[str, _text(1, BOARD_NAME_MAX)]
BoardDescription = Annotated[str, _text(0, BOARD_DESCRIPTION_MAX)]
Title = Annotated[str, _text(1, TITLE_MAX)]
Content = Annotated[str, _text(1, CONTENT_MAX)]
CommentText = Annotated[str, _text(1, COMMENT_MAX)]


class _Body(BaseModel):
    # Fields the contract does not name are ignored, as in the event payloads.
    model_config = ConfigDict(extra="ignore")


# --- boards ------------------------------------------------------------------------------------


class BoardCreate(_Body):
    slug: Slug
    name: BoardName
    description: BoardDescription = ""


class BoardPublic(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str


# --- posts -------------------------------------------------------------------------------------


class AuthorPublic(BaseModel):
    """``id`` is null once the author has withdrawn."""

    id: uuid.UUID | None
    nickname: str


class PostCreate(_Body):
    title: Title
    content: Content


class PostUpdate(_Body):
    """Only the fields given change."""

    title: Title | None = None
    content: Content | None = None


class PostSummaryPublic(BaseModel):
    """One item of a post list (from the read model)."""

    id: uuid.UUID
    board_id: uuid.UUID
    title: str
    author: AuthorPublic
    comment_count: int
    view_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


class PostPublic(PostSummaryPublic):
    """The post detail: the list item's fields plus ``content``."""

    content: str


class PostsPublic(BaseModel):
    items: list[PostSummaryPublic]
    total: int
    page: int
    size: int


# --- comments ----------------------------------------------------------------------------------


class CommentCreate(_Body):
    content: CommentText


class CommentUpdate(_Body):
    content: CommentText


class CommentPublic(BaseModel):
    id: uuid.UUID
    post_id: uuid.UUID
    author: AuthorPublic
    content: str
    created_at: dt.datetime
    updated_at: dt.datetime


class CommentsPublic(BaseModel):
    items: list[CommentPublic]
    total: int
    page: int
    size: int
