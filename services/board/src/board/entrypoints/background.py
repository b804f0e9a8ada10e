"""Write-behind: the worker's view-count flush moves the views counted in Redis into PostgreSQL.

Only board has it: only board counts an event that is no domain event (a read of a post), too
often to write each one through. ``board.bootstrap.build_worker`` runs it in a
``chassis.periodic.PeriodicTask`` (backs off during an outage, resumes by itself), stopped with
the consumers on SIGTERM; it runs once more on the way out so no counted view waits in Redis for
the next start.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from chassis.logging import get_logger

log = get_logger(__name__)


class PendingViews(Protocol):
    """Where the API counts views (``board.adapters.view_counter.ViewCounter``)."""

    async def take(self, limit: int = ...) -> dict[uuid.UUID, int]: ...

    async def give_back(self, counts: Mapping[uuid.UUID, int]) -> None: ...


def view_count_flush(
    pending: PendingViews,
    record: Callable[[Mapping[uuid.UUID, int]], Awaitable[None]],
) -> Callable[[], Awaitable[int]]:
    """Move the counted views into the database with ``record``; returns how many were moved.
    Counts whose ``record`` failed go back to Redis for the next flush; if Redis cannot take them
    back either (both down at once), they are kept in this process for the next flush: none is
    lost."""
    unsaved: Counter[uuid.UUID] = Counter()

    async def flush() -> int:
        moved = 0
        while True:
            counts: Counter[uuid.UUID] = Counter(unsaved)
            unsaved.clear()
            if not counts:
                counts.update(await pending.take())
            if not counts:
                break
            try:
                await record(counts)
            except Exception:
                try:
                    await pending.give_back(counts)
                except Exception:
                    unsaved.update(counts)
                    log.warning("views.kept_in_memory", posts=len(counts))
                raise
            moved += sum(counts.values())
        if moved:
            log.info("views.flushed", views=moved)
        return moved

    return flush
