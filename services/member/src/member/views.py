"""CQRS read side: queries that answer the API straight from tables, without loading aggregates."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from member.adapters.tables import member_activity, members
from member.domain.activity import COUNTERS


async def member(session: AsyncSession, member_id: uuid.UUID) -> dict[str, Any] | None:
    """``{id, email, nickname, role, status, points, created_at}``."""
    row = (
        await session.execute(
            select(
                members.c.id,
                members.c.email,
                members.c.nickname,
                members.c.role,
                members.c.status,
                members.c.points,
                members.c.created_at,
            ).where(members.c.id == member_id)
        )
    ).first()
    return dict(row._mapping) if row else None


async def activity(session: AsyncSession, member_id: uuid.UUID) -> dict[str, int] | None:
    """The member's counters from the read model (eventually consistent).

    A member the projection has not seen yet gets zeros and the points of the member table."""
    row = (
        await session.execute(
            select(member_activity).where(member_activity.c.member_id == member_id)
        )
    ).first()
    if row is not None:
        return {name: max(0, int(getattr(row, name))) for name in COUNTERS}
    points = await session.scalar(select(members.c.points).where(members.c.id == member_id))
    if points is None:
        return None
    return {**dict.fromkeys(COUNTERS, 0), "points": int(points)}
