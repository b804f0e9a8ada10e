"""Crash recovery of the orchestrator: recovery waits for the reply consumer's partitions.

The worker's loops, the deadline sweeper (``saga.sweeper``, after this recovery) and the in-flight
gauge (a ``chassis.periodic.PeriodicTask``), are wired in ``saga.bootstrap.build_worker``: during
a database outage they back off (capped) and resume by themselves, logging the outage once. The reply
consumer and the outbox relay come from the chassis too.
"""

from __future__ import annotations

import asyncio

from chassis.logging import get_logger

log = get_logger("saga.worker")


async def wait_for_assignment(assigned: asyncio.Event, timeout: float) -> None:
    """Recovery waits until the reply consumer owns its partitions, so replies that queued up
    while the orchestrator was down are read before any deadline is judged."""
    try:
        await asyncio.wait_for(assigned.wait(), timeout)
    except TimeoutError:
        log.warning("saga.recovery_without_assignment", waited_seconds=timeout)
