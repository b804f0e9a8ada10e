"""Test support for read-model counter tables: the counters a summaries table implies, counted in Python."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from chassis.list_counts import ListCounts
from chassis.messaging.envelope import Envelope
from chassis.read_model import ReadModel


async def implied(engine: AsyncEngine, counts: ListCounts) -> dict[tuple[str, str], int]:
    """``(scope, key) -> n``: what ``count(*)`` of the live summaries gives for every list."""
    s = counts.summaries
    found: Counter[tuple[str, str]] = Counter()
    async with engine.connect() as conn:
        for row in (await conn.execute(select(s))).mappings():
            if row[counts.hidden]:
                continue
            for scope in counts.scopes:
                values = [row[c] for c in scope.columns]
                if all(v is not None for v in values):
                    found[(scope.name, scope.key(*values))] += 1
    return dict(found)


async def stored(engine: AsyncEngine, counts: ListCounts) -> dict[tuple[str, str], int]:
    """``(scope, key) -> live`` as the counter table holds it (rows at 0 left out: a list that
    had rows and has none now keeps its row at 0)."""
    c = counts.counts
    async with engine.connect() as conn:
        rows = await conn.execute(select(c.c.scope, c.c.key, c.c.live))
        return {(r.scope, r.key): int(r.live) for r in rows if r.live != 0}


async def assert_exact(engine: AsyncEngine, counts: ListCounts, context: str) -> None:
    """Every counter equals the count of its list's live summaries (none negative)."""
    want, have = await implied(engine, counts), await stored(engine, counts)
    assert have == want, f"{context}: counters {have} != count(*) {want}"


async def apply_each(
    engine: AsyncEngine, model: ReadModel, counts: ListCounts, events: Sequence[Envelope]
) -> None:
    """Apply ``events`` to the live tables one transaction each, as the live projector does
    (without the inbox, so a redelivery is applied again), checking the counters after each."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    for n, env in enumerate(events):
        async with sessions() as session, session.begin():
            await model.apply(session, model.live, env)
        await assert_exact(engine, counts, f"after event {n} ({env.type} {env.subject})")
