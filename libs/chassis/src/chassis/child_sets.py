"""Set-based read-model counts: a count is derived from the set of child ids seen, never from deltas.

A read model that shows a count (the comments of a post, the answers of a question, a member's
posts or points) records every child it hears of in a *child table* of its own::

    (kind, child_id) -> parent_id, weight, alive

and derives the count of a parent as ``sum(weight)`` over its alive children. Two merge rules
make the table a function of the *set* of events seen, whatever their order or multiplicity
(docs/CONVENTIONS.md "Failures of consumers"):

- **a tombstone wins**: once an event said the child is gone, a repeated or older "added"
  cannot revive it (``alive := alive AND incoming.alive``; a deletion is final in every
  aggregate that uses this);
- **the first event naming the parent fixes it**: a "deleted" that names no parent (its
  author was anonymized) still removes the child from the parent an earlier or later
  "added" named.

Why not "newer version wins" on the parent row with counts kept as +1/-1: a version guard on
the whole row must drop an event older than the row, so a comment whose event was dead-lettered
and replayed after a newer event of the same post is never counted; without the guard a
redelivered +1 counts twice. A set has neither problem: replaying an event adds a member the set
may lack and changes nothing otherwise.

An event for a child whose parent row does not exist yet is kept here; the parent's later
creation computes its count from the table (:func:`tally`). Every transaction that recounts a
parent first takes a transaction-scoped advisory lock on it (:func:`lock_parents`), so two
transactions adding children of one parent cannot each miss the other's child: the second
recounts after the first commits (READ COMMITTED takes a new snapshot per statement). Locks are
taken child rows first, then parents in sorted order, so they cannot deadlock among themselves.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import ScalarSelect

from chassis.db import CompiledWrite

_SINGLE_WRITER = "child_sets.single_writer"


@dataclass(frozen=True)
class Child:
    """One event's statement about one child.

    ``kind`` names the count (e.g. ``"comments"``); ``child_id`` is unique within the kind (an
    entity id, or a derived key such as ``"<saga id>:payee"``); ``parent_id`` is the row whose
    count includes it (None when the event does not name it); ``weight`` is what the child adds
    to the count (1, or a number of points); ``alive`` is False for a tombstone."""

    kind: str
    child_id: str
    parent_id: uuid.UUID | None
    alive: bool
    weight: int = 1


def child_table(name: str, metadata: MetaData, *, single_writer: bool = False) -> Table:
    """A child table named ``name``; a function so a rebuild can create an identical fresh one.

    ``single_writer``: only one transaction at a time writes the table (a rebuild's fresh
    copy), so recounts take no advisory lock; a rebuild that runs in one transaction would
    otherwise hold one lock per parent until it commits and could exhaust the lock table."""
    table = Table(
        name,
        metadata,
        Column("kind", String(40), nullable=False),
        Column("child_id", String(100), nullable=False),
        # NULL until an event names the parent (a tombstone of an anonymized child may come first)
        Column("parent_id", UUID(as_uuid=True), nullable=True),
        Column("weight", Integer, nullable=False, server_default="1"),
        # False once any event said the child is gone: a tombstone is never revived
        Column("alive", Boolean, nullable=False),
        PrimaryKeyConstraint("kind", "child_id", name=f"pk_{name}"),
    )
    Index(f"ix_{name}_parent", table.c.parent_id, table.c.kind)
    return mark_single_writer(table) if single_writer else table


def mark_single_writer(table: Table) -> Table:
    """Mark a child table (e.g. a copy made with ``Table.to_metadata``) as written by one
    transaction at a time: see ``child_table``."""
    table.info[_SINGLE_WRITER] = True
    return table


async def record(
    session: AsyncSession, table: Table, children: Iterable[Child]
) -> frozenset[uuid.UUID]:
    """Merge ``children`` into ``table``, lock their parents, and return those parents.

    The returned parents are the ones whose count may have changed; recount them with
    :func:`tally` in the same transaction. A parent named only by an earlier event is found from
    the stored row. Raises nothing beyond the database's own errors."""
    parents: set[uuid.UUID] = set()
    merge = _merge(table)
    for child in sorted(children, key=lambda c: (c.kind, c.child_id)):
        parent = (
            await merge.execute(
                session,
                kind=child.kind,
                child_id=child.child_id,
                parent_id=child.parent_id,
                weight=child.weight,
                alive=child.alive,
            )
        ).scalar()
        if parent is not None:
            parents.add(parent)
    await lock_parents(session, table, parents)
    return frozenset(parents)


async def lock_parents(session: AsyncSession, table: Table, parents: Iterable[uuid.UUID]) -> None:
    """Serialize the recounts of each parent of ``table`` until the transaction ends."""
    await lock_keys(session, table, (f"{table.name}:{parent}" for parent in parents))


async def lock_keys(session: AsyncSession, table: Table, keys: Iterable[str]) -> None:
    """Serialize, until the transaction ends, the projector transactions that name the same key
    (e.g. ``"author:<member id>"``: a summary that copies an author's nickname and the update of
    that nickname in every summary, which must not each miss the other's uncommitted row).
    Nothing to do for the fresh tables of a rebuild (one writer, ``single_writer``). Keys are
    locked in sorted order, so two callers cannot deadlock among themselves."""
    if table.info.get(_SINGLE_WRITER):
        return
    for name in sorted(set(keys)):
        await _LOCK_KEY.execute(session, key=name)


#: compiled once: a projector takes one or two of these per event
_LOCK_KEY = CompiledWrite(
    select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=Text()), 0)))
)


@functools.lru_cache(maxsize=16)
def _merge(table: Table) -> CompiledWrite:
    """The merge of one child into ``table`` (the rules of this module's docstring), returning
    its parent: compiled once per table (the live one, and a rebuild's fresh copy), since
    SQLAlchemy compiles an ``ON CONFLICT`` again at every execution."""
    names = ("kind", "child_id", "parent_id", "weight", "alive")
    stmt = insert(table).values({n: bindparam(n, type_=table.c[n].type) for n in names})
    return CompiledWrite(
        stmt.on_conflict_do_update(
            index_elements=[table.c.kind, table.c.child_id],
            set_={
                "alive": table.c.alive & stmt.excluded.alive,
                "parent_id": func.coalesce(table.c.parent_id, stmt.excluded.parent_id),
            },
        ).returning(table.c.parent_id)
    )


def tally(table: Table, kind: str, parent: uuid.UUID | object) -> ScalarSelect[int]:
    """``sum(weight)`` of the alive children of ``kind`` under ``parent`` (0 if none), as a
    subquery; ``parent`` may be a value or a column of the parent table."""
    return (
        select(func.coalesce(func.sum(table.c.weight), 0).cast(Integer))
        .where(table.c.kind == kind, table.c.parent_id == parent, table.c.alive)
        .scalar_subquery()
    )
