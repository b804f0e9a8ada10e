"""The member-activity projector compiles nothing per event: its recount is compiled once (``chassis.db.CompiledWrite``)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.messaging.envelope import Envelope
from member.config import SERVICE_ROOT
from member.service_layer.projector import READ_MODEL
from member.service_layer.unit_of_work import MemberUnitOfWork
from tests.support.compiles import compiled_by_projecting

pytestmark = pytest.mark.integration


def _history(i: int) -> list[Envelope]:
    """A member's post, created then deleted."""
    post, board, author = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    own = {"post_id": str(post), "board_id": str(board), "author_id": str(author)}
    now = dt.datetime.now(dt.UTC).isoformat()
    events = [
        ("PostCreated", {**own, "title": f"t{i}", "created_at": now, "version": 1}),
        ("PostDeleted", {**own, "version": 2}),
    ]
    return [
        Envelope.new(kind, "board", data, key=str(post), topic="board.events", offset=10 * i + n)
        for n, (kind, data) in enumerate(events)
    ]


def _uow(sessions: async_sessionmaker[AsyncSession]) -> MemberUnitOfWork:
    return MemberUnitOfWork(sessions, source="member")


async def test_a_post_history_compiles_nothing_after_the_first(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    compiled = await compiled_by_projecting(
        monkeypatch, database_url, SERVICE_ROOT, READ_MODEL, _uow, _history
    )
    assert compiled == []
