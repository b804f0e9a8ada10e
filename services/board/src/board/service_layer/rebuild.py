"""Rebuildable read model: replay the event topics into a fresh table, then swap it in.

1. Create an empty ``post_summaries_rebuild`` and ``post_summary_comments_rebuild`` (the comment
   set behind the counts) with the live tables' shapes.
2. Replay ``board.events`` and ``member.events`` from the beginning into it; each event's
   effect is committed with the projection checkpoint of its partition.
3. Lock the live table against writes (readers go on), replay what arrived meanwhile, copy the
   view counts from ``posts``, and refuse the swap if a live post is missing (the topics no
   longer hold its history). Then drop the old tables and rename the new ones, in one
   transaction.

The worker keeps running throughout. Its projector waits on the lock and then continues on the
new tables; the projection is a function of the set of events (the version guard and the comment
set), so the events it applies a second time change nothing. After the swap
every cached first page is invalidated, since any of them may differ from the new table.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import MetaData, Table, delete, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from board.adapters.first_page_cache import FirstPageCache
from board.adapters.tables import (
    LIVE_COMMENTS,
    LIVE_SUMMARIES,
    REBUILD_COMMENTS,
    REBUILD_SUMMARIES,
    post_summaries,
    posts,
    summaries_table,
)
from board.service_layer.projector import PostSummaryProjector, save_checkpoint
from chassis.child_sets import child_table
from chassis.db import create_session_factory, projection_checkpoint_table, utcnow
from chassis.logging import get_logger
from chassis.messaging.connection import KafkaTarget
from chassis.messaging.consumer import replay
from chassis.messaging.envelope import Envelope
from chassis.metrics import PROJECTION_CHECKPOINT

log = get_logger(__name__)

#: Only one rebuild at a time (a session-level advisory lock).
_REBUILD_LOCK = zlib.crc32(b"board:rebuild-read-model")


class RebuildRefused(RuntimeError):
    """The rebuild stopped before the swap; the live read model is unchanged."""


@dataclass(frozen=True)
class RebuildReport:
    events_applied: int
    events_skipped: int
    summaries: int


async def rebuild_post_summaries(
    engine: AsyncEngine,
    *,
    kafka: KafkaTarget,
    topics: list[str],
    service: str,
    first_pages: FirstPageCache | None,
) -> RebuildReport:
    """Rebuild ``post_summaries`` from ``topics`` (physical names) and swap it in."""
    sessions = create_session_factory(engine)
    meta = MetaData()
    fresh = summaries_table(REBUILD_SUMMARIES, meta)
    fresh_comments = child_table(REBUILD_COMMENTS, meta, single_writer=True)
    projector = PostSummaryProjector(fresh, fresh_comments)
    counts = {"applied": 0, "skipped": 0}

    async def apply(env: Envelope) -> None:
        async with sessions() as session, session.begin():
            try:
                await projector.apply(session, env)
            except ValidationError as exc:
                # The live consumer dead-lettered it too: skipping keeps both the same.
                counts["skipped"] += 1
                log.warning("rebuild.event_skipped", event_id=env.id, type=env.type, error=str(exc))
            else:
                counts["applied"] += 1
            await save_checkpoint(session, REBUILD_SUMMARIES, env)
        PROJECTION_CHECKPOINT.labels(service, REBUILD_SUMMARIES, env.topic, str(env.partition)).set(
            env.offset
        )

    async with engine.connect() as guard:
        if not await guard.scalar(select(func.pg_try_advisory_lock(_REBUILD_LOCK))):
            raise RebuildRefused("another rebuild of the read model is running")
        await guard.commit()
        try:
            started = utcnow()
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: meta.drop_all(c, checkfirst=True))
                await conn.run_sync(meta.create_all)
                await conn.execute(
                    delete(projection_checkpoint_table).where(
                        projection_checkpoint_table.c.projection == REBUILD_SUMMARIES
                    )
                )
            log.info("rebuild.replay_started", topics=topics)
            reached = await replay(kafka, topics, apply)
            log.info("rebuild.replayed", events=counts["applied"], skipped=counts["skipped"])

            async with sessions() as session, session.begin():
                # Writers (the projector, the view flush) wait from here; readers go on. The
                # tables are locked in the order the projector writes them (a comment's child row,
                # then its summary), or a projector holding the first would deadlock with us.
                await session.execute(
                    text(f"LOCK TABLE {LIVE_COMMENTS}, {LIVE_SUMMARIES} IN EXCLUSIVE MODE")
                )
                await replay(kafka, topics, apply, start_offsets=reached)
                await session.execute(
                    update(fresh)
                    .where(fresh.c.post_id == posts.c.id)
                    .values(view_count=posts.c.view_count)
                )
                missing = await session.scalar(
                    select(func.count())
                    .select_from(posts)
                    .where(
                        posts.c.deleted_at.is_(None),
                        posts.c.created_at < started,
                        ~exists().where(fresh.c.post_id == posts.c.id),
                    )
                )
                if missing:
                    raise RebuildRefused(
                        f"{missing} live posts are missing from the replayed events "
                        "(the topics' retention dropped their history, or the outbox relay is "
                        "behind); the live read model was kept"
                    )
                for live, table in ((LIVE_SUMMARIES, fresh), (LIVE_COMMENTS, fresh_comments)):
                    await _swap(session, live, table)
                summaries = await session.scalar(select(func.count()).select_from(post_summaries))
            log.info("rebuild.swapped", summaries=summaries)
            if first_pages is not None:
                await first_pages.invalidate_committed(None)
        except BaseException:
            async with engine.begin() as conn:  # leave no half-built table behind
                await conn.run_sync(lambda c: meta.drop_all(c, checkfirst=True))
            raise
        finally:
            await guard.scalar(select(func.pg_advisory_unlock(_REBUILD_LOCK)))
            await guard.commit()
    return RebuildReport(counts["applied"], counts["skipped"], int(summaries or 0))


async def _swap(session: AsyncSession, live: str, fresh: Table) -> None:
    """Replace the table ``live`` by ``fresh``, renaming its constraint and indexes to match."""
    await session.execute(text(f"DROP TABLE {live}"))
    await session.execute(text(f"ALTER TABLE {fresh.name} RENAME TO {live}"))
    await session.execute(
        text(f"ALTER TABLE {live} RENAME CONSTRAINT pk_{fresh.name} TO pk_{live}")
    )
    for index in fresh.indexes:
        assert index.name is not None
        live_name = index.name.replace(fresh.name, live, 1)
        await session.execute(text(f"ALTER INDEX {index.name} RENAME TO {live_name}"))
