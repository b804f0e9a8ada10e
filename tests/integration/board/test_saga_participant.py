"""Saga participant: AnonymizeAuthor then RestoreAuthor is a round trip, with replies on saga.replies."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from board.domain.authors import WITHDRAWN_NICKNAME
from chassis.saga import SagaCommand
from tests.integration.board.harness import BoardStack

pytestmark = pytest.mark.integration

WITHDRAWN = {"id": None, "nickname": WITHDRAWN_NICKNAME}


def _command(saga_id: str, name: str, member_id: uuid.UUID, **extra: Any) -> SagaCommand:
    return SagaCommand(
        saga_id=saga_id,
        saga_type="member-withdrawal",
        step="anonymize-author",
        command=name,
        payload={"member_id": str(member_id)},
        **extra,
    )


async def test_anonymize_then_restore_is_a_round_trip(board: BoardStack) -> None:
    member, other = uuid.uuid4(), uuid.uuid4()
    free = await board.board_id("free")
    await board.send(
        "member.events",
        "MemberRegistered",
        str(member),
        {"member_id": str(member), "nickname": "떠날회원", "role": "USER"},
        source="member",
    )
    own = [await board.write_post(member, f"내 글 {n}") for n in range(2)]
    others = await board.write_post(other, "다른 사람 글")
    comment = await board.client.post(
        f"/api/posts/{others['id']}/comments",
        json={"content": "내 댓글"},
        headers=board.auth(member),
    )
    assert comment.status_code == 201
    shown = {"id": str(member), "nickname": "떠날회원"}
    for post in own:
        await board.wait_for_item(free, post["id"], lambda i: i["author"] == shown, "the nickname")
    await board.wait_for_item(free, others["id"], lambda i: i["comment_count"] == 1, "the comment")
    list_before = await board.board_posts(free)
    saga_id = str(uuid.uuid4())

    await board.send_saga_command(_command(saga_id, "AnonymizeAuthor", member))
    reply = await board.saga_reply(saga_id, "AnonymizeAuthor")

    assert (reply["outcome"], reply["result"]) == ("SUCCESS", {"posts": 2, "comments": 1})
    for post in own:
        detail = (await board.client.get(f"/api/posts/{post['id']}")).json()
        assert detail["author"] == WITHDRAWN
        await board.wait_for_item(
            free, post["id"], lambda i: i["author"] == WITHDRAWN, "anonymized"
        )
    comments = (await board.client.get(f"/api/posts/{others['id']}/comments")).json()["items"]
    assert comments[0]["author"] == WITHDRAWN
    assert (await board.client.get(f"/api/posts/{others['id']}")).json()["author"]["id"] == str(
        other
    )
    # without an author id the member can no longer change the post
    refused = await board.client.patch(
        f"/api/posts/{own[0]['id']}", json={"title": "x"}, headers=board.auth(member)
    )
    assert refused.status_code == 403

    await board.send_saga_command(
        _command(saga_id, "RestoreAuthor", member, compensates="AnonymizeAuthor")
    )
    restored = await board.saga_reply(saga_id, "RestoreAuthor")

    assert restored["outcome"] == "SUCCESS"
    assert restored["result"] == {"posts": 2, "comments": 1, "compensates": "AnonymizeAuthor"}
    for post in own:
        assert (await board.client.get(f"/api/posts/{post['id']}")).json()["author"] == shown
        await board.wait_for_item(free, post["id"], lambda i: i["author"] == shown, "restored")
    comments = (await board.client.get(f"/api/posts/{others['id']}/comments")).json()["items"]
    assert comments[0]["author"] == shown
    # the detail reads above bump view counts, which the periodic flush may apply at any
    # moment, so compare one snapshot with the view counts taken out of both sides
    list_after = (await board.board_posts(free))["items"]
    assert [_without_views(i) for i in list_after] == [
        _without_views(i) for i in list_before["items"]
    ]


def _without_views(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "view_count"}


async def test_restore_without_a_prior_anonymization_is_a_successful_no_op(
    board: BoardStack,
) -> None:
    member = uuid.uuid4()
    post = await board.write_post(member, "그대로인 글")
    saga_id = str(uuid.uuid4())

    await board.send_saga_command(
        _command(saga_id, "RestoreAuthor", member, compensates="AnonymizeAuthor")
    )
    reply = await board.saga_reply(saga_id, "RestoreAuthor")

    assert reply["outcome"] == "SUCCESS"
    assert reply["result"] == {"posts": 0, "comments": 0, "compensates": "AnonymizeAuthor"}
    detail = (await board.client.get(f"/api/posts/{post['id']}")).json()
    assert detail["author"]["id"] == str(member)


async def test_a_command_without_a_member_id_is_refused(board: BoardStack) -> None:
    saga_id = str(uuid.uuid4())
    command = SagaCommand(
        saga_id=saga_id,
        saga_type="member-withdrawal",
        step="anonymize-author",
        command="AnonymizeAuthor",
        payload={"member_id": "not-a-uuid"},
    )

    await board.send_saga_command(command)
    reply = await board.saga_reply(saga_id, "AnonymizeAuthor")

    assert reply["outcome"] == "FAILURE"
    assert "member_id" in reply["reason"]


async def test_anonymize_author_after_its_compensation_is_refused_without_effect(
    board: BoardStack,
) -> None:
    """A step timeout before the pivot sends RestoreAuthor first; the slow AnonymizeAuthor that
    arrives after it must not anonymize anything."""
    member = uuid.uuid4()
    post = await board.write_post(member, "남을 글")
    saga_id = str(uuid.uuid4())

    await board.send_saga_command(
        _command(saga_id, "RestoreAuthor", member, compensates="AnonymizeAuthor")
    )
    assert (await board.saga_reply(saga_id, "RestoreAuthor"))["outcome"] == "SUCCESS"
    await board.send_saga_command(_command(saga_id, "AnonymizeAuthor", member))
    late = await board.saga_reply(saga_id, "AnonymizeAuthor")

    assert late["outcome"] == "FAILURE"
    assert late["reason"] == "a compensation of this saga was already applied"
    detail = (await board.client.get(f"/api/posts/{post['id']}")).json()
    assert detail["author"]["id"] == str(member)
