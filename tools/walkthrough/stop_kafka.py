"""Walkthrough stop-kafka: with the broker down, writes still succeed (transactional outbox); their events flow once it returns and the read model catches up."""

from __future__ import annotations

import asyncio
import contextlib

from tools.chaos.load import Load
from tools.walkthrough.common import (
    UNPUBLISHED,
    board_db,
    dead_letters,
    failed,
    kafka_answers,
    post_rows,
    unprojected,
    until,
)
from tools.walkthrough.guide import Guide

NAME = "stop-kafka"
SUMMARY = (
    "A service writes its change and the event that announces it in one database "
    "transaction: the event goes to the outbox table, and the outbox relay publishes it to "
    "Kafka afterwards. So a write does not need the broker. We stop Kafka (deploy/local/"
    "infra.sh stop kafka), write posts and comments, see them accepted and their events wait "
    "in board's outbox, start Kafka again, and see the events published, the post list "
    "(read model) catch up and nothing dead-lettered: an outage is a transient failure, "
    "waited out, never a reason to give a message up."
)
POSTS = 6
#: What the reader runs when the walkthrough could not start the broker again.
REMEDY = "start it by hand: `make infra-up` (make run's instance)"


async def run(guide: Guide, load: Load) -> None:
    infra = guide.target.infra
    await load.prepare(5, hot_posts=1)
    guide.say(
        f"Stop the broker at {guide.target.kafka_bootstrap} (a controlled shutdown; it takes a "
        "few seconds). Every Kafka client of the stack loses its connection."
    )
    guide.metric(
        "board-worker",
        "outbox_published_total",
        "events the outbox relay has published so far",
        topic="board.events",
    )
    letters_before = await dead_letters(guide.target)
    sent_from = len(load.requests)
    posts: list[str] = []
    # Shielded: an interruption must not leave the stop half-way while the finally starts it.
    stopping = asyncio.ensure_future(asyncio.to_thread(infra.stop, "kafka"))
    try:
        await asyncio.shield(stopping)
        guide.do("kafka stopped")
        guide.wait()
        guide.say("Now write through the gateway as usual: posts, and a comment on each.")
        for index in range(POSTS):
            member = load.world.members[index % len(load.world.members)]
            post_id = await load.write_post(member)
            if post_id is not None:
                posts.append(post_id)
                load.world.hot_posts = [post_id]
                await load.comment(member)
        guide.do(f"{len(posts)} posts and comments written while Kafka was down")
        bad = failed(load, sent_from)
        guide.check(not bad, f"every write accepted{f' ({bad[:3]})' if bad else ''}")
        async with board_db(guide.target) as db:
            waiting = int(await db.fetchval(UNPUBLISHED))
            rows = await post_rows(db, posts[-2:])
        guide.check(waiting >= len(posts), f"their events wait in board's outbox ({waiting} rows)")
        guide.look("the outbox (board database)", f"{UNPUBLISHED};  -> {waiting}")
        guide.rows("the post list has not seen them (listed false)", rows)
        guide.metric(
            "board-worker",
            "outbox_published_total",
            "published meanwhile: none of these (the relay retries, the rows stay)",
            topic="board.events",
        )
        guide.logs(
            "board-worker",
            "Unable connect|outage.started|consumer.waiting",
            "the worker's Kafka clients losing the broker and waiting it out",
        )
        guide.wait()
    finally:
        with contextlib.suppress(Exception):
            await stopping  # it ends on its own; then starting is never overtaken by it
        guide.say("Start Kafka again: the relay reconnects and publishes what waited.")
        started = await start_again(guide)
    if not started:
        return
    async with board_db(guide.target) as db:

        async def drained() -> bool:
            return not unprojected(await post_rows(db, posts)) and not await db.fetchval(
                UNPUBLISHED
            )

        took = await until(drained, 120)
        rows = await post_rows(db, posts)
    guide.rows("the post list now (board database)", rows[-2:])
    guide.metric(
        "board-worker",
        "outbox_published_total",
        "published once the broker returned",
        topic="board.events",
    )
    guide.logs("board-worker", "outage.ended|consumer.recovered", "the end of the outage")
    guide.check(
        took is not None,
        "board's outbox drained and every post listed with its comment"
        + (f" {took:.1f} s after Kafka returned" if took is not None else " (not within 120 s)"),
    )
    guide.check(bool(posts), "posts were written while Kafka was down")
    letters_after = await dead_letters(guide.target)
    moved = {
        topic: n - letters_before.get(topic, 0)
        for topic, n in letters_after.items()
        if n != letters_before.get(topic, 0)
    }
    guide.look(
        "the dead-letter topics' end offsets (messages ever dead-lettered), before -> after",
        "\n".join(
            f"{topic}: {letters_before.get(topic, 0)} -> {n}" for topic, n in letters_after.items()
        ),
    )
    guide.check(
        not moved,
        "nothing dead-lettered during the outage"
        + (f" ({', '.join(f'{t} +{n}' for t, n in moved.items())})" if moved else ""),
    )


async def start_again(guide: Guide) -> bool:
    """Start the broker (infra.sh waits for a stop still under way first) and check that it
    accepts connections; whether it does. Never raises: a walkthrough that was interrupted
    ends as such, with the broker's state said."""
    try:
        await asyncio.to_thread(guide.target.infra.start, "kafka")
    except Exception as exc:  # reported, not raised: the reader is told what to run
        guide.put_back(False, f"Kafka ({str(exc).splitlines()[0]})", REMEDY)
        return False
    up = await kafka_answers(guide.target.kafka_bootstrap)
    guide.put_back(
        up, f"Kafka started, accepting connections at {guide.target.kafka_bootstrap}", REMEDY
    )
    return up
