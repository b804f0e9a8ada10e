"""The post-summary projector compiles nothing per event: its upserts are compiled once (``chassis.db.CompiledWrite``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from board.config import SERVICE_ROOT
from board.service_layer.projector import READ_MODEL
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.messaging.envelope import Envelope
from tests.support.compiles import compiled_by_projecting

pytestmark = pytest.mark.integration


def _history(i: int) -> list[Envelope]:
    """A post's life: created, commented, edited, deleted."""
    post, board, author = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = dt.datetime.now(dt.UTC).isoformat()
    own = {"post_id": str(post), "board_id": str(board), "author_id": str(author)}
    events: list[tuple[str, dict[str, Any]]] = [
        ("PostCreated", {**own, "title": f"t{i}", "created_at": now, "version": 1}),
        ("CommentAdded", {"post_id": str(post), "comment_id": str(uuid.uuid4())}),
        ("PostUpdated", {**own, "title": f"u{i}", "updated_at": now, "version": 2}),
        ("PostDeleted", {**own, "version": 3}),
    ]
    return [
        Envelope.new(kind, "board", data, key=str(post), topic="board.events", offset=10 * i + n)
        for n, (kind, data) in enumerate(events)
    ]


async def test_a_post_history_compiles_nothing_after_the_first(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    compiled = await compiled_by_projecting(
        monkeypatch, database_url, SERVICE_ROOT, READ_MODEL, BoardUnitOfWork, _history
    )
    assert compiled == []
