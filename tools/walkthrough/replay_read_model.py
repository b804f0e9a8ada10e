"""Walkthrough replay-read-model: a corrupted read model is thrown away and rebuilt from the event topics (CQRS read model, event replay)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tools.chaos.load import Load
from tools.chaos.readmodel import Findings, check_board
from tools.walkthrough.common import board_db, post_rows, unprojected, until
from tools.walkthrough.guide import Guide

NAME = "replay-read-model"
SUMMARY = (
    "board's post list (post_summaries) is a read model: a projection of the events on "
    "board.events and member.events, never written by a request. So it can be thrown away "
    "and built again from the topics. We write a post with comments, corrupt its row in the "
    "post list with SQL, see the comparison with the write model report it, run `board "
    "rebuild-read-model` (it replays the topics into fresh tables and swaps them in while the "
    "worker keeps running) and compare again."
)
COMMENTS = 2
CORRUPT = (
    "UPDATE post_summaries SET title = 'corrupted by hand', comment_count = comment_count + 40"
    " WHERE post_id = $1::uuid"
)
RESTORE = "UPDATE post_summaries SET title = $2, comment_count = $3 WHERE post_id = $1::uuid"


def about(found: Findings, post_id: str) -> list[str]:
    """The violations ``check_board`` reported about ``post_id``."""
    return [v for v in found.violations if post_id in v]


async def compare(db: Any) -> Findings:
    found = Findings()
    await check_board({"board": db}, found)
    return found


async def run(guide: Guide, load: Load) -> None:
    await load.prepare(5, hot_posts=1)
    post_id = load.world.hot_posts[0]
    for member in load.world.members[:COMMENTS]:
        await load.comment(member)
    async with board_db(guide.target) as db:

        async def projected() -> bool:
            return not unprojected(await post_rows(db, [post_id]))

        if await until(projected, 60) is None:
            guide.fail(f"post {post_id} never reached the post list (is board-worker running?)")
            return
        (row,) = await post_rows(db, [post_id])
        guide.rows("the post and its row in the post list, as projected", [row])
        guide.say(
            "Corrupt the row by hand, as a bug in a projection or a bad migration would: "
            "another title, 40 comments too many."
        )
        await db.execute(CORRUPT, post_id)
        repaired = False
        try:
            guide.do(f"corrupted post_summaries row {post_id}")
            guide.rows("the corrupted row", await post_rows(db, [post_id]))
            reported = about(await compare(db), post_id)
            guide.look("what the comparison with the write model reports", "\n".join(reported))
            guide.check(bool(reported), "the comparison reports the corrupted row")
            guide.wait()
            guide.say(
                "Rebuild the read model from the topics: `board rebuild-read-model`, with the "
                "environment of board's worker (docs/services/board.md, Rebuilding)."
            )
            code, output = await rebuild(guide)
            repaired = code == 0
            guide.look(
                "the rebuild's own output: its log lines (read_model.replay_started,"
                " read_model.swapped) and its report, one JSON line",
                _summary(output) or output[-1500:],
            )
            guide.check(code == 0, f"board rebuild-read-model exited {code}")
            (after,) = await post_rows(db, [post_id])
            guide.rows("the row after the rebuild", [after])
            left = about(await compare(db), post_id)
            guide.check(
                not left and not unprojected([after]) and after["comments"] == COMMENTS,
                f"the row equals its write model again (title, {COMMENTS} comments)"
                + (f": {left}" if left else ""),
            )
        finally:
            if not repaired:
                # Interrupted or failed: put back what was there, so the stack stays correct.
                await db.execute(RESTORE, post_id, row["title"], row["listed_comments"])
                (back,) = await post_rows(db, [post_id])
                guide.put_back(
                    back["listed_title"] == row["listed_title"]
                    and back["listed_comments"] == row["listed_comments"],
                    f"post_summaries row {post_id} restored by hand (the rebuild did not complete)",
                    "rebuild it: `board rebuild-read-model` (docs/services/board.md, Rebuilding)",
                )
    guide.metric(
        "board-worker",
        "projection_checkpoint_offset",
        "the live projection's position, where the swap left it",
        projection="post_summaries",
    )


async def rebuild(guide: Guide) -> tuple[int, str]:
    """Run ``board rebuild-read-model`` on the target; (exit status, its output)."""
    argv, env = guide.target.service_command("board", "rebuild-read-model")
    guide.do("board rebuild-read-model")
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    return int(process.returncode or 0), out.decode(errors="replace")


def _summary(output: str) -> str:
    """The rebuild's ``read_model.*`` log events and its report, from its output."""
    shown = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if "events_applied" in entry:
            keys = ("read_model", "events_applied", "events_skipped", "rows")
            shown.append("report: " + json.dumps({k: entry.get(k) for k in keys}))
        elif str(entry.get("event", "")).startswith("read_model."):
            shown.append(str(entry["event"]))
    return "\n".join(shown)
