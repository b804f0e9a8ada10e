"""A scratch service schema for chassis tests: chassis tables plus one business table."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.db import chassis_metadata

scratch_metadata = MetaData()
widgets = Table(
    "widgets",
    scratch_metadata,
    Column("id", String(64), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
)


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(chassis_metadata.create_all)
        await conn.run_sync(scratch_metadata.create_all)


async def widget_count(engine: AsyncEngine, widget_id: str) -> int | None:
    async with engine.connect() as conn:
        value = await conn.scalar(select(widgets.c.count).where(widgets.c.id == widget_id))
        return None if value is None else int(value)


def increment(widget_id: str):  # type: ignore[no-untyped-def]
    return update(widgets).where(widgets.c.id == widget_id).values(count=widgets.c.count + 1)
