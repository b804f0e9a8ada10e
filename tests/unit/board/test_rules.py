"""Board rules: who may post where, who may change what, the validation limits, and how authors show."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from pydantic import ValidationError

from board.domain.authors import UNKNOWN_NICKNAME, WITHDRAWN_NICKNAME, Author, Byline, byline
from board.domain.errors import InvalidValue, NotPermitted
from board.domain.events import CommentAdded, PostCreated, PostUpdated
from board.domain.model import (
    COMMENT_MAX,
    CONTENT_MAX,
    TITLE_MAX,
    Actor,
    Board,
    Post,
)
from board.entrypoints.schemas import BoardCreate, CommentCreate, PostCreate, PostUpdate
from board.views import like_pattern
from chassis.messaging.envelope import event_data

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=5)
ADMIN = Actor(uuid.uuid4(), is_admin=True)


def board(*, admin_only: bool = False) -> Board:
    return Board(
        id=uuid.uuid4(),
        slug="notice" if admin_only else "free",
        name="게시판",
        description="",
        created_at=NOW,
        admin_only=admin_only,
    )


def member() -> Actor:
    return Actor(uuid.uuid4())


def post_by(author: Actor) -> Post:
    post = Post.write(board(), author, title="제목", content="내용", now=NOW)
    post.events.clear()
    return post


# --- who may post where ----------------------------------------------------------------------


def test_anyone_signed_in_posts_on_an_open_board() -> None:
    author = member()
    post = Post.write(board(), author, title="안녕", content="본문", now=NOW)

    assert (post.author_id, post.version, post.comment_count) == (author.id, 1, 0)
    assert post.events == [
        PostCreated(
            post_id=post.id,
            board_id=post.board_id,
            author_id=author.id,
            title="안녕",
            created_at=NOW,
            version=1,
        )
    ]


def test_only_an_admin_posts_on_an_admin_only_board() -> None:
    notice = board(admin_only=True)

    with pytest.raises(NotPermitted):
        Post.write(notice, member(), title="공지", content="본문", now=NOW)
    assert Post.write(notice, ADMIN, title="공지", content="본문", now=NOW).author_id == ADMIN.id


def test_only_an_admin_opens_a_board_and_slugs_are_checked() -> None:
    with pytest.raises(NotPermitted):
        Board.open(member(), slug="new", name="새 게시판", description="", now=NOW)
    for bad in ("a", "-leading", "Upper", "with space", "x" * 41, "ok\n", "한글"):
        with pytest.raises(InvalidValue):
            Board.open(ADMIN, slug=bad, name="n", description="", now=NOW)
    opened = Board.open(ADMIN, slug="qna-2", name="질문", description="", now=NOW)
    assert (opened.slug, opened.admin_only) == ("qna-2", False)


# --- who may change what -----------------------------------------------------------------------


def test_the_author_or_an_admin_edits_a_post_and_each_edit_is_a_new_version() -> None:
    author = member()
    post = post_by(author)

    with pytest.raises(NotPermitted):
        post.edit(member(), title="남의 글", now=LATER)
    post.edit(author, title="고친 제목", now=LATER)
    post.edit(ADMIN, content="관리자가 고친 내용", now=LATER)

    assert (post.title, post.content, post.version, post.updated_at) == (
        "고친 제목",
        "관리자가 고친 내용",
        3,
        LATER,
    )
    assert [e.name for e in post.events] == ["PostUpdated", "PostUpdated"]
    assert [e.version for e in post.events] == [2, 3]


def test_an_edit_that_changes_nothing_publishes_nothing() -> None:
    author = member()
    post = post_by(author)

    post.edit(author, title="제목", now=LATER)

    assert (post.version, post.events, post.updated_at) == (1, [], NOW)


def test_deleting_a_post_takes_its_comments_with_it() -> None:
    author = member()
    post = post_by(author)
    comments = [post.add_comment(member(), content=f"댓글 {n}", now=NOW) for n in range(2)]
    post.events.clear()

    with pytest.raises(NotPermitted):
        post.delete(member(), comments, now=LATER)
    post.delete(author, comments, now=LATER)

    assert post.is_deleted
    assert all(c.is_deleted for c in comments)
    assert post.comment_count == 0
    assert [e.name for e in post.events] == ["CommentDeleted", "CommentDeleted", "PostDeleted"]
    assert [e.version for e in post.events] == [4, 5, 6]


def test_comments_are_changed_by_their_author_or_an_admin_only() -> None:
    post = post_by(member())
    commenter = member()
    comment = post.add_comment(commenter, content="첫 댓글", now=NOW)
    assert post.events == [
        CommentAdded(comment_id=comment.id, post_id=post.id, author_id=commenter.id, version=2)
    ]

    with pytest.raises(NotPermitted):
        post.edit_comment(comment, member(), content="남의 댓글", now=LATER)
    with pytest.raises(NotPermitted):
        post.remove_comment(comment, member(), now=LATER)
    post.edit_comment(comment, commenter, content="고친 댓글", now=LATER)
    post.remove_comment(comment, ADMIN, now=LATER)

    assert (comment.content, comment.is_deleted, post.comment_count, post.version) == (
        "고친 댓글",
        True,
        0,
        3,
    )


def test_an_anonymized_post_is_shown_without_author_and_only_an_admin_may_change_it() -> None:
    author = member()
    post = post_by(author)

    post.anonymize_author()
    with pytest.raises(NotPermitted):
        post.edit(author, title="돌려줘", now=LATER)
    post.restore_author(author.id)

    assert post.may_be_changed_by(author)
    updates = [e for e in post.events if isinstance(e, PostUpdated)]
    assert len(updates) == len(post.events)
    assert [(e.author_id, e.version) for e in updates] == [(None, 2), (author.id, 3)]


# --- validation limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "content"),
    [
        ("", "c"),
        ("   ", "c"),
        ("t" * (TITLE_MAX + 1), "c"),
        ("t", ""),
        ("t", "c" * (CONTENT_MAX + 1)),
        ("a\x00b", "c"),
        ("t", "\ud800"),
    ],
)
def test_posts_outside_the_limits_are_refused(title: str, content: str) -> None:
    with pytest.raises(InvalidValue):
        Post.write(board(), member(), title=title, content=content, now=NOW)


def test_the_limits_themselves_are_allowed() -> None:
    post = Post.write(board(), member(), title="t" * TITLE_MAX, content="c" * CONTENT_MAX, now=NOW)
    comment = post.add_comment(member(), content="c" * COMMENT_MAX, now=NOW)

    assert (len(post.title), len(post.content), len(comment.content)) == (
        TITLE_MAX,
        CONTENT_MAX,
        COMMENT_MAX,
    )
    with pytest.raises(InvalidValue):
        post.add_comment(member(), content="c" * (COMMENT_MAX + 1), now=NOW)


def test_request_schemas_enforce_the_same_limits() -> None:
    # NUL and lone surrogates are refused before any schema by the chassis input guard
    # (tests/unit/chassis/test_input_guard.py, tests/integration/board/test_input_guard.py).
    PostCreate(title="t" * TITLE_MAX, content="c" * CONTENT_MAX)
    for bad in (
        {"title": "t" * (TITLE_MAX + 1), "content": "c"},
        {"title": "t", "content": "c" * (CONTENT_MAX + 1)},
        {"title": 1, "content": "c"},
        {"content": "c"},
    ):
        with pytest.raises(ValidationError):
            PostCreate.model_validate(bad)
    with pytest.raises(ValidationError):
        CommentCreate(content="c" * (COMMENT_MAX + 1))
    with pytest.raises(ValidationError):
        PostUpdate.model_validate({"title": ""})
    with pytest.raises(ValidationError):
        BoardCreate.model_validate({"slug": "ok\n", "name": "n"})
    assert PostUpdate.model_validate({}).model_dump() == {"title": None, "content": None}


# --- how authors show ---------------------------------------------------------------------------


def test_bylines_hide_withdrawn_authors_and_tolerate_unknown_ones() -> None:
    member_id = uuid.uuid4()

    assert byline(member_id, Author(member_id, "별명")) == Byline(member_id, "별명")
    assert byline(member_id, None) == Byline(member_id, UNKNOWN_NICKNAME)
    assert byline(None, None) == Byline(None, WITHDRAWN_NICKNAME)
    assert byline(member_id, Author(member_id, None, withdrawn=True)) == Byline(
        None, WITHDRAWN_NICKNAME
    )


def test_search_patterns_take_wildcards_literally() -> None:
    assert like_pattern("100%") == "%100\\%%"
    assert like_pattern("a_b") == "%a\\_b%"
    assert like_pattern("c:\\") == "%c:\\\\%"
    assert like_pattern("' OR 1=1 --") == "%' OR 1=1 --%"


def test_event_payloads_are_json_with_string_ids_and_iso_times() -> None:
    author = member()
    post = Post.write(board(), author, title="t", content="c", now=NOW)

    assert event_data(post.events[0]) == {
        "post_id": str(post.id),
        "version": 1,
        "board_id": str(post.board_id),
        "author_id": str(author.id),
        "title": "t",
        "created_at": "2026-01-01T00:00:00Z",
    }
