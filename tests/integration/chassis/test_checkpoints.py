"""Projection checkpoints: stored per projection and partition, and never moved backwards."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.checkpoints import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.integration


async def test_a_checkpoint_advances_and_never_goes_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        assert await load_checkpoint(session, "summaries", "board.events", 0) == 0
        await save_checkpoint(session, "summaries", "board.events", 0, 10)
        await save_checkpoint(session, "summaries", "board.events", 0, 7)  # a late, older write
        await save_checkpoint(session, "summaries", "board.events", 1, 3)
    async with sessions() as session:
        assert await load_checkpoint(session, "summaries", "board.events", 0) == 10
        assert await load_checkpoint(session, "summaries", "board.events", 1) == 3
        assert await load_checkpoint(session, "other", "board.events", 0) == 0
