"""CQRS read-model checks: each read-model row compared with what its write model implies.

A shortfall in a read model counts as a lost event, an excess as a duplicate applied. Used
by the fault suite's invariants (tests/chaos/invariants.py) and by the replay walkthrough,
which corrupts a row, sees it reported here, rebuilds the read model and sees it no more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg


@dataclass
class Findings:
    """What one check found: the violations (empty = all invariants hold) and the counts.

    ``tally`` keeps, per violation, the events it stands for (lost, duplicated), so that a
    scenario counts only the events of violations that are new in its check: a loss repaired
    since the previous check never offsets a new one.
    """

    violations: list[str] = field(default_factory=list)
    lost: int = 0
    duplicates: int = 0
    tally: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, violation: str, *, lost: int = 0, duplicates: int = 0) -> None:
        """One violation, standing for ``lost`` missing and ``duplicates`` extra events."""
        self.violations.append(violation)
        self.lost += lost
        self.duplicates += duplicates
        before_lost, before_dup = self.tally.get(violation, (0, 0))
        self.tally[violation] = (before_lost + lost, before_dup + duplicates)

    def compare(self, what: str, expected: int, actual: int, *, per_event: bool = True) -> None:
        """A counter of a read model against its source: short = lost, over = duplicated.

        With ``per_event`` each unit of difference is one event (a count); otherwise (a sum
        of points) a difference counts as one event.
        """
        if actual == expected:
            return
        events = abs(expected - actual) if per_event else 1
        violation = f"{what}: {actual}, expected {expected}"
        if actual < expected:
            self.add(violation, lost=events)
        else:
            self.add(violation, duplicates=events)

    def new_counts(self, known: set[str]) -> tuple[int, int]:
        """(lost, duplicated) events of the violations not in ``known`` (reported earlier)."""
        lost = sum(n for v, (n, _) in self.tally.items() if v not in known)
        duplicates = sum(n for v, (_, n) in self.tally.items() if v not in known)
        return lost, duplicates


@asynccontextmanager
async def connect(urls: Mapping[str, str]) -> AsyncIterator[dict[str, asyncpg.Connection]]:
    """One connection to each database of ``urls`` (service -> URL), closed afterwards."""
    connections: dict[str, asyncpg.Connection] = {}
    try:
        for service, url in urls.items():
            connections[service] = await asyncpg.connect(url, timeout=5)
        yield connections
    finally:
        for connection in connections.values():
            await connection.close()


async def check_board(db: dict[str, asyncpg.Connection], found: Findings) -> None:
    rows = await db["board"].fetch(
        """
        SELECT p.id, p.deleted_at IS NOT NULL AS deleted, p.title, p.author_id,
               p.comment_count AS stored_count,
               (SELECT count(*) FROM comments c
                 WHERE c.post_id = p.id AND c.deleted_at IS NULL) AS comments,
               s.post_id IS NOT NULL AS projected, s.comment_count AS listed,
               s.deleted AS listed_deleted, s.title AS listed_title, s.author_id AS listed_author
          FROM posts p LEFT JOIN post_summaries s ON s.post_id = p.id
        """
    )
    for row in rows:
        post = f"post {row['id']}"
        if not row["projected"]:
            found.add(f"{post}: missing from the post list", lost=1)
            continue
        if row["deleted"] != row["listed_deleted"]:
            found.add(f"{post}: deleted={row['deleted']} but listed otherwise", lost=1)
        if row["deleted"]:
            continue
        found.compare(f"{post} comment_count (list)", row["comments"], row["listed"])
        found.compare(f"{post} comment_count (post)", row["comments"], row["stored_count"])
        if row["listed_title"] != row["title"] or row["listed_author"] != row["author_id"]:
            found.add(f"{post}: title or author differs in the post list", lost=1)
    extra = await db["board"].fetchval(
        "SELECT count(*) FROM post_summaries s WHERE NOT EXISTS"
        " (SELECT 1 FROM posts p WHERE p.id = s.post_id)"
    )
    if extra:
        found.add(f"{extra} post list rows without a post", duplicates=extra)
    await check_list_counts(
        db["board"],
        found,
        "post_list_counts",
        "SELECT 'all', '', count(*) FROM post_summaries WHERE NOT deleted"
        " UNION ALL SELECT 'board', board_id::text, count(*) FROM post_summaries"
        "  WHERE NOT deleted GROUP BY board_id"
        " UNION ALL SELECT 'author', author_id::text, count(*) FROM post_summaries"
        "  WHERE NOT deleted AND author_id IS NOT NULL GROUP BY author_id",
    )


async def check_list_counts(
    conn: asyncpg.Connection, found: Findings, table: str, implied: str
) -> None:
    """Every list counter (``table``: scope, key -> live) equals the ``count(*)`` its summaries
    imply (``implied``: rows of scope, key, count), so each list's ``total`` is its length."""
    # Both ``table`` and ``implied`` are the callers' constants, never input.
    rows = await conn.fetch(
        f"WITH want (scope, key, live) AS ({implied})"  # noqa: S608
        " SELECT coalesce(w.scope, c.scope) AS scope, coalesce(w.key, c.key) AS key,"
        "  coalesce(w.live, 0) AS want, coalesce(c.live, 0) AS have"
        f" FROM want w FULL JOIN {table} c ON c.scope = w.scope AND c.key = w.key"
        " WHERE coalesce(w.live, 0) <> coalesce(c.live, 0)"
    )
    for row in rows:
        found.compare(f"{table} {row['scope']} {row['key']}", row["want"], row["have"])
