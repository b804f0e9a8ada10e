"""Walkthrough kill-worker: a consumer killed mid-stream loses nothing (transactional outbox, offsets committed after the effect, idempotent projection)."""

from __future__ import annotations

import asyncio
import time

from tools.chaos.load import Load
from tools.walkthrough.common import (
    UNPUBLISHED,
    board_db,
    failed,
    post_rows,
    unprojected,
    until,
    write_posts,
)
from tools.walkthrough.guide import Guide

NAME = "kill-worker"
SUMMARY = (
    "board-worker projects board.events into the post list (post_summaries, board's read "
    "model). We write posts from two members, SIGKILL board-worker in the middle (no shutdown "
    "code runs: a crashed pod), keep writing while it is down, and let the supervisor start it "
    "again. Every post must have been accepted, and every one must appear in the post list "
    "once the restarted worker has caught up: the posts and their events were committed "
    "together (outbox), and the worker commits its Kafka offsets only after their effect."
)
WORKER = "board-worker"
#: Seconds of writing before the kill, and after the worker is back.
BEFORE, AFTER = 2.0, 2.0


async def run(guide: Guide, load: Load) -> None:
    processes = guide.target.processes
    try:
        processes.pid(WORKER)
    except FileNotFoundError:
        guide.fail(
            f"no pid file {processes.pid_dir}/{WORKER}.pid: is `make run` running"
            " (it writes one per process under RUN_PID_DIR)?"
        )
        return
    await load.prepare(5, hot_posts=0)
    guide.metric(
        WORKER,
        "projection_checkpoint_offset",
        "the last offset of board.events the projection applied",
        projection="post_summaries",
    )
    guide.wait()

    guide.say("Two members start writing posts through the gateway, one after another.")
    sent_from = len(load.requests)
    stop = asyncio.Event()
    posts: list[str] = []
    writing = asyncio.create_task(write_posts(load, stop, posts))
    try:
        await asyncio.sleep(BEFORE)
        guide.say(
            f"Now SIGKILL {WORKER}'s process group: whatever it was projecting is cut off "
            "mid-batch, its offsets for that batch never committed."
        )
        old = await asyncio.to_thread(processes.kill, WORKER)
        guide.do(f"SIGKILL {WORKER} (pid {old}); posts are still being written")
        at_kill = len(posts)
        replaced = asyncio.ensure_future(
            asyncio.to_thread(processes.wait_replaced, WORKER, old, 90)
        )
        backlog = await outbox_backlog(guide, replaced)
        try:
            seconds = await replaced
        except TimeoutError as exc:
            guide.fail(f"{exc}: does `make run` restart processes (RUN_RESTART=on-failure)?")
            return
        guide.do(f"{WORKER} restarted by the supervisor and ready after {seconds:.1f} s")
        guide.check(
            backlog > 0,
            f"events waited in board's outbox while {WORKER} (its relay) was away"
            f" (up to {backlog} unpublished rows)",
        )
        while_down = len(posts) - at_kill
        guide.logs("run.py", f"{WORKER} (exited|restarted)", "the supervisor saw it die")
        await asyncio.sleep(AFTER)
    finally:
        stop.set()
        await writing
    guide.do(f"{len(posts)} posts written, {while_down} of them while {WORKER} was away")
    bad = failed(load, sent_from)
    guide.check(
        not bad,
        f"every write accepted ({len(bad)} failed: {bad[:3]})" if bad else "every write accepted",
    )
    guide.check(while_down > 0, f"posts were written while {WORKER} was down or restarting")

    guide.say(
        "The restarted worker resumes from the last committed offset: it sees again what the "
        "killed one had applied but not committed (the projection ignores a repeat, by the "
        "post's version) and everything written while it was down."
    )
    async with board_db(guide.target) as db:
        lagging: list[str] = []

        async def caught_up() -> bool:
            nonlocal lagging
            lagging = unprojected(await post_rows(db, posts))
            return not lagging

        took = await until(caught_up, 60)
        guide.rows(
            "the read model rows (board database): SELECT * FROM post_summaries WHERE post_id = ...",
            (await post_rows(db, posts[-3:])),
        )
    guide.check(
        took is not None,
        f"all {len(posts)} posts in the post list"
        + (f" within {took:.1f} s" if took is not None else f"; {len(lagging)} missing after 60 s"),
    )
    guide.metric(
        WORKER,
        "projection_checkpoint_offset",
        "the projection's offset now, moved past every post written",
        projection="post_summaries",
    )


async def outbox_backlog(guide: Guide, replaced: asyncio.Future[float]) -> int:
    """Board's unpublished outbox rows, read every 0.3 s until ``replaced`` is done (the
    worker, whose outbox relay publishes them, is back); a changed count is printed at most
    once a second, the largest returned. The posts keep being accepted meanwhile: their events wait here."""
    largest, last, shown_at = 0, -1, 0.0
    async with board_db(guide.target) as db:
        while not replaced.done():
            waiting = int(await db.fetchval(UNPUBLISHED))
            if waiting != last and time.monotonic() - shown_at >= 1.0:  # a line a second
                guide.do(f"board's outbox backlog: {waiting} unpublished rows ({UNPUBLISHED})")
                last, shown_at = waiting, time.monotonic()
            largest = max(largest, waiting)
            await asyncio.wait([replaced], timeout=0.3)
    return largest
