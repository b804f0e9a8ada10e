"""Invariant checks of the fault suite, read straight from the four databases and Kafka.

Each read model is compared with what its write model implies (CQRS), points are
checked for conservation, every saga's terminal state is checked against its
participants' state, and every dead-letter topic is counted. A shortfall in a read
model counts as a lost event, an excess as a duplicate applied.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.chaos.stack import KAFKA_BOOTSTRAP, database_url
from tools.chaos.readmodel import Findings, check_board, check_list_counts, connect
from tools.chaos.stack import SERVICES

SIGNUP_POINTS = 100
ACTIVE_SAGA = ("RUNNING", "COMPENSATING")


@dataclass(frozen=True)
class Deleted:
    """What the load deleted (ids as strings): each must be gone from its read model."""

    posts: frozenset[str] = frozenset()
    questions: frozenset[str] = frozenset()
    answers: frozenset[str] = frozenset()


def databases() -> AbstractAsyncContextManager[dict[str, asyncpg.Connection]]:
    """One superuser connection to each service database of the chaos instance."""
    return connect({service: database_url(service) for service in SERVICES})


async def outbox_written(db: dict[str, asyncpg.Connection]) -> int:
    """Events ever staged in the four outboxes (their sequences; rows are pruned later)."""
    total = 0
    for connection in db.values():
        value = await connection.fetchval(
            "SELECT last_value FROM pg_sequences WHERE sequencename = 'outbox_messages_seq_seq'"
        )
        total += int(value or 0)
    return total


async def unpublished(db: dict[str, asyncpg.Connection]) -> int:
    total = 0
    for connection in db.values():
        total += await connection.fetchval(
            "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL"
        )
    return int(total)


async def sagas_in_flight(db: dict[str, asyncpg.Connection]) -> int:
    return int(
        await db["saga"].fetchval(
            "SELECT count(*) FROM saga_instances WHERE status = ANY($1::text[])", list(ACTIVE_SAGA)
        )
    )


async def kafka_counts() -> tuple[Counter[str], int]:
    """(messages in each ``.dlq`` topic, total lag of every consumer group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=10000)
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=10000)
    await consumer.start()
    await admin.start()
    try:
        # The consumer's own metadata only covers subscribed topics: ask the admin client.
        described = await admin.describe_topics()
        partitions = [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if not t["topic"].startswith("__")
            for p in t["partitions"]
        ]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        dlq: Counter[str] = Counter()
        for tp in partitions:
            if tp.topic.endswith(".dlq"):
                dlq[tp.topic] += ends[tp] - starts[tp]
        lag = 0
        for group, _ in await admin.list_consumer_groups():
            offsets = await admin.list_consumer_group_offsets(group)
            for tp, meta in offsets.items():
                if tp in ends and meta.offset >= 0:
                    lag += max(0, ends[tp] - meta.offset)
        return dlq, lag
    finally:
        await admin.close()
        await consumer.stop()


async def drained(db: dict[str, asyncpg.Connection]) -> bool:
    """Outboxes published, every consumer group caught up, no saga in flight."""
    if await unpublished(db) or await sagas_in_flight(db):
        return False
    _, lag = await kafka_counts()
    return lag == 0


# ---------------------------------------------------------------------- read models


async def check_qna(db: dict[str, asyncpg.Connection], found: Findings) -> None:
    rows = await db["qna"].fetch(
        """
        SELECT q.id, q.status, q.bounty, q.accepted_answer_id,
               (SELECT count(*) FROM answers a WHERE a.question_id = q.id) AS answers,
               s.id IS NOT NULL AS projected, s.status AS listed_status,
               s.answer_count AS listed_answers, s.accepted_answer_id AS listed_accepted,
               s.bounty AS listed_bounty, s.deleted AS listed_deleted
          FROM questions q LEFT JOIN question_summaries s ON s.id = q.id
        """
    )
    for row in rows:
        question = f"question {row['id']}"
        if not row["projected"] or row["listed_deleted"]:
            found.add(f"{question}: missing from the question list", lost=1)
            continue
        found.compare(f"{question} answer_count", row["answers"], row["listed_answers"])
        for column in ("status", "accepted_answer_id", "bounty"):
            listed = row[f"listed_{column.split('_')[0]}"]
            if listed != row[column]:
                found.add(f"{question} {column}: listed {listed}, is {row[column]}", lost=1)
    extra = await db["qna"].fetchval(
        "SELECT count(*) FROM question_summaries s WHERE NOT s.deleted AND NOT EXISTS"
        " (SELECT 1 FROM questions q WHERE q.id = s.id)"
    )
    if extra:
        found.add(f"{extra} question list rows without a question", duplicates=extra)
    await check_list_counts(
        db["qna"],
        found,
        "question_list_counts",
        "SELECT 'all', '', count(*) FROM question_summaries WHERE NOT deleted"
        " UNION ALL SELECT 'status', status, count(*) FROM question_summaries"
        "  WHERE NOT deleted GROUP BY status"
        " UNION ALL SELECT 'author', author_id::text, count(*) FROM question_summaries"
        "  WHERE NOT deleted AND author_id IS NOT NULL GROUP BY author_id"
        " UNION ALL SELECT 'author_status', author_id::text || ':' || status, count(*)"
        "  FROM question_summaries WHERE NOT deleted AND author_id IS NOT NULL"
        "  GROUP BY author_id, status",
    )


async def check_deleted(db: dict[str, asyncpg.Connection], found: Findings, gone: Deleted) -> None:
    """Every post, question and answer the load deleted is gone from its read model: a deleted
    post is a tombstone in the write model and flagged deleted in the post list (which hides
    it); a deleted question has no row and at most a deleted tombstone in the question list; a
    deleted answer has no row, so it is in no answer count."""
    posts = [_uuid(p) for p in gone.posts]
    # A post with no list row at all is reported by check_board (missing), not again here.
    questions = [_uuid(q) for q in gone.questions]
    answers = [_uuid(a) for a in gone.answers]
    for row in await db["board"].fetch(
        "SELECT p.id, p.deleted_at IS NOT NULL AS deleted, coalesce(s.deleted, true) AS hidden"
        " FROM posts p LEFT JOIN post_summaries s ON s.post_id = p.id WHERE p.id = ANY($1)",
        posts,
    ):
        if not row["deleted"]:
            found.add(f"deleted post {row['id']}: not deleted in the write model", lost=1)
        if not row["hidden"]:
            found.add(f"deleted post {row['id']}: still in the post list", lost=1)
    for row in await db["qna"].fetch(
        "SELECT s.id FROM question_summaries s WHERE s.id = ANY($1) AND NOT s.deleted", questions
    ):
        found.add(f"deleted question {row['id']}: still in the question list", lost=1)
    for row in await db["qna"].fetch("SELECT id FROM questions WHERE id = ANY($1)", questions):
        found.add(f"deleted question {row['id']}: still in the write model", lost=1)
    for row in await db["qna"].fetch("SELECT id FROM answers WHERE id = ANY($1)", answers):
        found.add(f"deleted answer {row['id']}: still counted", lost=1)


async def _count_by_author(
    connection: asyncpg.Connection, sql: str, column: str = "author_id"
) -> dict[Any, int]:
    return {r[column]: r["n"] for r in await connection.fetch(sql)}


async def check_activity(db: dict[str, asyncpg.Connection], found: Findings) -> None:
    """member_activity of every ACTIVE member against the rows in board, qna and member."""
    board, qna = db["board"], db["qna"]
    expected = {
        "posts": await _count_by_author(
            board,
            "SELECT author_id, count(*) n FROM posts WHERE deleted_at IS NULL GROUP BY author_id",
        ),
        "comments": await _count_by_author(
            board,
            "SELECT author_id, count(*) n FROM comments WHERE deleted_at IS NULL GROUP BY author_id",
        ),
        "questions": await _count_by_author(
            qna, "SELECT author_id, count(*) n FROM questions GROUP BY author_id"
        ),
        "answers": await _count_by_author(
            qna, "SELECT author_id, count(*) n FROM answers GROUP BY author_id"
        ),
        "accepted_answers": await _count_by_author(
            qna, "SELECT author_id, count(*) n FROM answers WHERE accepted GROUP BY author_id"
        ),
    }
    members = await db["member"].fetch(
        """
        SELECT m.id, m.points, a.member_id IS NOT NULL AS projected, a.posts, a.comments,
               a.questions, a.answers, a.accepted_answers, a.points AS listed_points
          FROM members m LEFT JOIN member_activity a ON a.member_id = m.id
         WHERE m.status = 'ACTIVE' AND m.role = 'USER'
        """
    )
    for row in members:
        member = f"activity of {row['id']}"
        if not row["projected"]:
            found.add(f"{member}: no row", lost=1)
            continue
        for counter, by_author in expected.items():
            found.compare(f"{member} {counter}", by_author.get(row["id"], 0), row[counter])
        found.compare(f"{member} points", row["points"], row["listed_points"], per_event=False)


# ---------------------------------------------------------------------- points and sagas


async def check_points(db: dict[str, asyncpg.Connection], found: Findings, baseline: int) -> None:
    """Sum of points = sign-up grants (+ the admin's seed, ``baseline``); each RESOLVED
    question moved its bounty exactly once, and no other question has a transfer."""
    total, members = await db["member"].fetchrow("SELECT sum(points), count(*) FROM members")
    surplus = int(total or 0) - SIGNUP_POINTS * int(members)
    if surplus != baseline:
        found.violations.append(
            f"points not conserved: {total} for {members} members ({surplus - baseline:+d})"
        )
    transfers: dict[str, list[asyncpg.Record]] = {}
    for row in await db["member"].fetch(
        "SELECT saga_id, question_id, amount, to_member_id FROM point_transfers"
        " WHERE refunded_at IS NULL"
    ):
        transfers.setdefault(row["question_id"], []).append(row)
    for question in await db["qna"].fetch("SELECT id, status, bounty FROM questions"):
        moved = transfers.pop(str(question["id"]), [])
        if question["status"] == "RESOLVED":
            # A bounty of 0 moves nothing, and member records no transfer for it.
            expected = [question["bounty"]] if question["bounty"] else []
            if [t["amount"] for t in moved] != expected:
                found.violations.append(
                    f"RESOLVED question {question['id']} (bounty {question['bounty']}) moved"
                    f" {[t['amount'] for t in moved]}"
                )
        elif moved:
            found.violations.append(
                f"{question['status']} question {question['id']} has a bounty transfer"
            )
    for question_id in transfers:
        found.violations.append(f"a transfer for question {question_id}, which does not exist")


async def check_sagas(db: dict[str, asyncpg.Connection], found: Findings) -> None:
    """Every saga terminal, and its terminal state matching the participants' state."""
    member, board, qna = db["member"], db["board"], db["qna"]
    # With no saga in flight, no semantic lock may be left held.
    for question_id in await qna.fetch("SELECT id FROM questions WHERE status = 'ACCEPTING'"):
        found.violations.append(f"question {question_id['id']} still ACCEPTING (lock not released)")
    for member_id in await member.fetch("SELECT id FROM members WHERE status = 'WITHDRAWING'"):
        found.violations.append(f"member {member_id['id']} still WITHDRAWING (lock not released)")
    for saga in await db["saga"].fetch(
        "SELECT id, type, status, data, failure_reason FROM saga_instances"
    ):
        name = f"{saga['type']} saga {saga['id']} {saga['status']}"
        sid = str(saga["id"])
        data = saga["data"] if isinstance(saga["data"], dict) else _json(saga["data"])
        if saga["status"] not in ("COMPLETED", "COMPENSATED"):
            found.violations.append(
                f"{name}: not COMPLETED or COMPENSATED ({saga['failure_reason']})"
            )
            continue
        completed = saga["status"] == "COMPLETED"
        if saga["type"] == "answer-acceptance":
            question = await qna.fetchrow(
                "SELECT status, bounty, accepted_answer_id, acceptance_saga_id FROM questions"
                " WHERE id = $1",
                _uuid(data["question_id"]),
            )
            transfer = await member.fetchval(
                "SELECT count(*) FROM point_transfers WHERE saga_id = $1 AND refunded_at IS NULL",
                sid,
            )
            resolved_here = (
                question is not None
                and question["status"] == "RESOLVED"
                and str(question["accepted_answer_id"]) == str(data["answer_id"])
                and question["acceptance_saga_id"] == sid
            )
            paid = transfer == (1 if question is not None and question["bounty"] else 0)
            if completed and not (resolved_here and paid):
                found.violations.append(
                    f"{name}: question {dict(question or {})}, transfer {transfer}"
                )
            if not completed and (resolved_here or transfer):
                found.violations.append(
                    f"{name}: question {dict(question or {})}, transfer {transfer}"
                )
        elif saga["type"] == "member-withdrawal":
            member_id = _uuid(data["member_id"])
            row = await member.fetchrow(
                "SELECT status, withdrawal_saga_id FROM members WHERE id = $1", member_id
            )
            status = row["status"] if row else None
            if completed:
                left = await board.fetchval(
                    "SELECT (SELECT count(*) FROM posts WHERE author_id = $1)"
                    " + (SELECT count(*) FROM comments WHERE author_id = $1)",
                    member_id,
                ) + await qna.fetchval(
                    "SELECT (SELECT count(*) FROM questions WHERE author_id = $1)"
                    " + (SELECT count(*) FROM answers WHERE author_id = $1)"
                    " + (SELECT count(*) FROM question_comments WHERE author_id = $1)",
                    member_id,
                )
                reopened = await qna.fetchval(
                    "SELECT count(*) FROM author_retirements r JOIN questions q"
                    " ON q.id = r.question_id WHERE r.saga_id = $1 AND r.question_closed"
                    " AND q.status <> 'CLOSED'",
                    sid,
                )
                if status != "WITHDRAWN" or row["withdrawal_saga_id"] != sid or left or reopened:
                    found.violations.append(
                        f"{name}: member {status}, {left} rows still name them,"
                        f" {reopened} retired questions not CLOSED"
                    )
            else:
                kept = await board.fetchval(
                    "SELECT count(*) FROM author_anonymizations WHERE saga_id = $1", sid
                ) + await qna.fetchval(
                    "SELECT count(*) FROM author_retirements WHERE saga_id = $1", sid
                )
                if status != "ACTIVE" or kept:
                    found.violations.append(
                        f"{name}: member {status}, {kept} anonymizations not restored"
                    )


def _uuid(value: Any) -> Any:
    import uuid

    return uuid.UUID(str(value))


def _json(value: Any) -> dict[str, Any]:
    import json

    loaded: dict[str, Any] = json.loads(value)
    return loaded


# ---------------------------------------------------------------------- all together


async def points_baseline() -> int:
    """Points beyond the sign-up grants before any load (the seeded admin's)."""
    async with databases() as db:
        total, members = await db["member"].fetchrow("SELECT sum(points), count(*) FROM members")
        return int(total or 0) - SIGNUP_POINTS * int(members)


async def check_all(baseline: int, gone: Deleted | None = None) -> Findings:
    """Every invariant on the state as it is now; ``gone``: what the load deleted."""
    found = Findings()
    async with databases() as db:
        unpublished_rows = await unpublished(db)
        if unpublished_rows:
            found.add(f"{unpublished_rows} outbox rows never published", lost=unpublished_rows)
        await check_board(db, found)
        await check_qna(db, found)
        await check_deleted(db, found, gone or Deleted())
        await check_activity(db, found)
        await check_points(db, found, baseline)
        await check_sagas(db, found)
    return found


async def converge(
    baseline: int,
    timeout: float,
    known: set[str],
    settled: float = 15.0,
    gone: Deleted | None = None,
) -> tuple[Findings, float | None]:
    """Wait until drained and every invariant holds: (last findings, seconds or None).

    Violations in ``known`` (found after an earlier scenario, and still there) do not count
    against this one. Once drained, violations that persist for ``settled`` seconds are
    final: nothing is left in flight that could still repair them, so the wait ends early.
    """
    started = time.monotonic()
    found = Findings(violations=["not drained"])
    failing_since: float | None = None
    while True:
        try:
            async with databases() as db:
                is_drained = await drained(db)
            if is_drained:
                found = await check_all(baseline, gone)
                if not set(found.violations) - known:
                    return found, time.monotonic() - started
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since >= settled:
                    return found, None
            else:
                failing_since = None
                found = Findings(violations=["not drained (outbox, consumer lag or sagas)"])
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            found = Findings(violations=[f"cannot read the state: {exc!r}"])
        if time.monotonic() - started > timeout:
            if found.violations and found.violations[0].startswith("not drained"):
                # Report what is wrong, not only that it never settled.
                with_details = await check_all(baseline, gone)
                with_details.violations.insert(0, "did not drain in time")
                return with_details, None
            return found, None
        await asyncio.sleep(1.0)
