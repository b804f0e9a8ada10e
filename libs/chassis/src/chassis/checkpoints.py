"""Projection checkpoint: the next offset a read model will read, stored in the same transaction as its effect."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.db import projection_checkpoint_table as checkpoints


async def save_checkpoint(
    session: AsyncSession, projection: str, topic: str, partition: int, next_offset: int
) -> None:
    """Advance ``projection``'s checkpoint for one partition; it never moves backwards."""
    statement = insert(checkpoints).values(
        projection=projection, topic=topic, partition=partition, next_offset=next_offset
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[checkpoints.c.projection, checkpoints.c.topic, checkpoints.c.partition],
            set_={
                "next_offset": func.greatest(
                    checkpoints.c.next_offset, statement.excluded.next_offset
                ),
                "updated_at": func.now(),
            },
        )
    )


async def load_checkpoint(
    session: AsyncSession, projection: str, topic: str, partition: int
) -> int:
    """The next offset ``projection`` will read from one partition (0 when it never read it)."""
    value = await session.scalar(
        select(checkpoints.c.next_offset).where(
            checkpoints.c.projection == projection,
            checkpoints.c.topic == topic,
            checkpoints.c.partition == partition,
        )
    )
    return int(value) if value is not None else 0
