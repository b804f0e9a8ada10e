"""Projection checkpoint: the next offset a read model will read, stored in the same transaction as its effect."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.db import CompiledWrite
from chassis.db import projection_checkpoint_table as checkpoints


def _advance() -> CompiledWrite:
    values = {n: bindparam(n, type_=checkpoints.c[n].type) for n in (*_KEY, "next_offset")}
    statement = insert(checkpoints).values(values)
    return CompiledWrite(
        statement.on_conflict_do_update(
            index_elements=[checkpoints.c[n] for n in _KEY],
            set_={
                "next_offset": func.greatest(
                    checkpoints.c.next_offset, statement.excluded.next_offset
                ),
                "updated_at": func.now(),
            },
        )
    )


_KEY = ("projection", "topic", "partition")
#: compiled once: it runs with every projected event (an ON CONFLICT is never cached)
_ADVANCE = _advance()


async def save_checkpoint(
    session: AsyncSession, projection: str, topic: str, partition: int, next_offset: int
) -> None:
    """Advance ``projection``'s checkpoint for one partition; it never moves backwards."""
    await _ADVANCE.execute(
        session, projection=projection, topic=topic, partition=partition, next_offset=next_offset
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
