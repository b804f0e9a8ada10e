"""Read-model counter table: a list's ``total`` kept as a counter row, so it costs one lookup, not a ``count(*)``.

A list served from a read model answers ``{items, total, page, size}``. Counting the matching
rows for ``total`` costs time linear in the list (an index-only scan of every live row of a board
at each request). Instead, the projector keeps one *counter row* per list filter::

    (scope, key) -> live        e.g. ("board", "<board id>") -> 1234, ("all", "") -> 98765

A :class:`Scope` names a filter and the summary columns its key is made of (none for the
unfiltered list); a summary counts in a scope when it is not hidden (``deleted`` false) and
every key column is set. The counters are derived from the *transitions of the summary rows*,
never from events: every statement that writes summaries goes through :meth:`ListCounts.upsert`
or :meth:`ListCounts.update`, which read the rows it may change (``FOR UPDATE``) and the rows as
written (``RETURNING``) in the same statement, and add ``+1`` for each row now counted and
``-1`` for each row that was. So whatever the summaries' own merge rules decide (a version
guard, a tombstone that stays) decides the counters too: a replay or an older event that
leaves a row as it was moves nothing, a created post +1, a deletion -1, a status move -1 on the
old status and +1 on the new. Unlike a ``+1`` per event (what ``chassis.child_sets`` explains
is wrong for counts), this stays exact under redelivery and reordering, because it is an
invariant of the table: ``live`` = the number of counted rows.

One statement per write, so no round trip is added: a ``MATERIALIZED`` CTE reads and locks the
rows before the write (a one-time filter makes the write wait for it), a data-modifying CTE
writes and returns them, and a last one applies the non-zero differences in (scope, key)
order, so two transactions cannot deadlock on counter rows. The row lock is what keeps two
writers of one summary row (a post's deletion, its author's withdrawal) from each missing the
other's change.

A rebuild recomputes every counter from its fresh summaries before the swap
(:meth:`ListCounts.recount_sql`, run by ``chassis.read_model.rebuild``), so counters and
summaries swap together and any drift is repaired (and reported). Hot rows: every created or
deleted row updates the ``all`` row, so two projector transactions that change the count
serialize from that statement to their commit; the projector commits one event at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    String,
    Table,
    Text,
    Update,
    cast,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.engine import Result, Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE, FromClause, ScalarSelect

#: Live table name -> the Table to write (``chassis.read_model.Tables``).
Tables = Mapping[str, Table]

#: What separates the columns of a key made of several (``"<author id>:OPEN"``).
KEY_SEPARATOR = ":"


@dataclass(frozen=True)
class Scope:
    """A list filter whose total is kept: ``name`` (the ``scope`` column) and the summary
    columns whose values, as text joined by ``:``, make the key (none: the unfiltered list,
    key ``""``). A row whose key column is NULL counts in no list of that scope."""

    name: str
    columns: tuple[str, ...] = ()

    def key(self, *values: object) -> str:
        """The key of the list filtered on ``values`` (one per column, in order); a UUID as
        PostgreSQL prints it (``str(uuid)``). Raises ``ValueError`` on a wrong number."""
        if len(values) != len(self.columns):
            raise ValueError(f"scope {self.name!r} has key columns {self.columns}, got {values}")
        return KEY_SEPARATOR.join(str(v) for v in values)


def list_counts_table(name: str, metadata: MetaData) -> Table:
    """A counter table named ``name``: ``(scope, key) -> live``, ``live`` a row count (≥ 0)."""
    return Table(
        name,
        metadata,
        Column("scope", String(40), nullable=False),
        Column("key", Text, nullable=False),
        Column("live", BigInteger, nullable=False),
        PrimaryKeyConstraint("scope", "key", name=f"pk_{name}"),
    )


@dataclass(frozen=True)
class ListCounts:
    """The counters of one summaries table: ``counts`` holds, per :class:`Scope`, the number of
    rows of ``summaries`` that are not ``hidden`` (a boolean column). Both are the live tables;
    every method that writes takes ``tables`` (live name -> the table to write, as
    ``chassis.read_model`` gives it) so the same code serves a rebuild's fresh copies."""

    summaries: Table
    counts: Table
    scopes: tuple[Scope, ...]
    hidden: str = "deleted"

    def __post_init__(self) -> None:
        names = [s.name for s in self.scopes]
        column_sets = [frozenset(s.columns) for s in self.scopes]
        if not names or len(set(names)) != len(names) or len(set(column_sets)) != len(names):
            raise ValueError(f"scopes need distinct names and column sets: {self.scopes}")
        missing = {self.hidden, *self._key_columns} - set(self.summaries.c.keys())
        if missing:
            raise ValueError(f"{self.summaries.name} has no column {sorted(missing)}")

    @property
    def _key_columns(self) -> tuple[str, ...]:
        """Every key column of every scope, once, in first-seen order."""
        return tuple(dict.fromkeys(c for s in self.scopes for c in s.columns))

    def scope(self, name: str) -> Scope:
        """The scope called ``name``; raises ``KeyError``."""
        for scope in self.scopes:
            if scope.name == name:
                return scope
        raise KeyError(name)

    # -- reading -----------------------------------------------------------------------------

    def total(self, scope: str, *values: object) -> ScalarSelect[int]:
        """The list's total as a subquery (0 when no row was ever counted): the live counter
        of ``scope`` for the key ``values``. Raises ``KeyError``/``ValueError`` for an unknown
        scope or a wrong number of values."""
        return self.total_of(scope, literal(self.scope(scope).key(*values), Text()))

    def total_of(self, scope: str, key: ColumnElement[str]) -> ScalarSelect[int]:
        """:meth:`total` for a key given as SQL, e.g. ``bindparam("key")`` in a statement
        compiled once (``chassis.db.CompiledSelect``), its value from ``Scope.key`` at each
        call. Raises ``KeyError`` for an unknown scope."""
        self.scope(scope)
        c = self.counts
        return (
            select(func.coalesce(func.max(c.c.live), 0))
            .where(c.c.scope == scope, c.c.key == key)
            .scalar_subquery()
        )

    # -- writing -----------------------------------------------------------------------------

    def insert_row(
        self, tables: Tables, row: Mapping[str, Any], where: Callable[[Table], ColumnElement[bool]]
    ) -> Counted[Insert]:
        """An ``INSERT`` of the summary ``row`` (values or SQL expressions) whose rows before
        are those of ``where(summaries)`` (the row's key), read first. Add the
        ``on_conflict_do_update`` to ``.write`` (``.write.excluded`` works), then
        :meth:`execute`."""
        s = tables[self.summaries.name]
        before = self._before(s, where(s))
        source = select(
            *(
                # typed: a bare parameter in a SELECT list would be text
                (v if isinstance(v, ColumnElement | ScalarSelect) else cast(v, s.c[k].type)).label(
                    k
                )
                for k, v in row.items()
            )
        ).where(_after_reading(before))
        return Counted(insert(s).from_select(list(row), source), before)

    def update_rows(
        self, tables: Tables, where: Callable[[Table], ColumnElement[bool]]
    ) -> Counted[Update]:
        """An ``UPDATE`` of the summaries ``where(summaries)`` selects, the same rows read
        first. Add ``.values(...)`` to ``.write``, then :meth:`execute`."""
        s = tables[self.summaries.name]
        condition = where(s)
        before = self._before(s, condition)
        return Counted(s.update().where(condition, _after_reading(before)), before)

    async def execute(
        self,
        session: AsyncSession,
        tables: Tables,
        before: CTE,
        write: Insert | Update,
        returning: Sequence[str] = (),
    ) -> Result[Any]:
        """Run ``write`` (the completed ``Counted.write``; ``before`` is its ``Counted.before``)
        and move the counters in ``tables`` by the difference between the rows before and as
        written, in one statement. Returns the written rows' ``returning`` columns."""
        return await session.execute(self.statement(tables, before, write, returning))

    def statement(
        self, tables: Tables, before: CTE, write: Insert | Update, returning: Sequence[str] = ()
    ) -> Select[Any]:
        """The one statement :meth:`execute` runs, e.g. to compile it once
        (``chassis.db.CompiledWrite``) when ``write``'s values are named parameters."""
        s, c = tables[self.summaries.name], tables[self.counts.name]
        tracked = (self.hidden, *self._key_columns)
        after = write.returning(*(s.c[n] for n in dict.fromkeys((*tracked, *returning)))).cte(
            "counted_after"
        )
        # The counter part is constant SQL (no parameter): as text it costs nothing to compile,
        # and SQLAlchemy compiles an ON CONFLICT statement at every execution (it has no cache
        # key for it).
        bump = text(self._moves_sql(c.name)).columns().cte("counted_moves")
        # in this order: a WITH item sees only those before it
        return select(*(after.c[n] for n in returning)).add_cte(before, after, bump)

    def _moves_sql(self, counts: str) -> str:
        """``INSERT`` into ``counts`` of the non-zero sums of -1 per row of ``counted_before``
        and +1 per row of ``counted_after`` that is counted, per (scope, key), in that order."""
        sql = _MOVES.get((self, counts))
        if sql is None:
            q = _quote
            columns = ", ".join(q(n) for n in (self.hidden, *self._key_columns))
            lists = ", ".join(f"('{scope.name}', {_key_sql('r', scope)})" for scope in self.scopes)
            sql = (
                f"INSERT INTO {q(counts)} AS c (scope, key, live)"  # noqa: S608 (identifiers)
                " SELECT m.scope, m.key, sum(r.d) FROM"
                f" (SELECT -1 AS d, {columns} FROM counted_before"
                f"  UNION ALL SELECT 1, {columns} FROM counted_after) AS r"
                f" CROSS JOIN LATERAL (VALUES {lists}) AS m (scope, key)"
                f" WHERE NOT r.{q(self.hidden)} AND m.key IS NOT NULL"
                " GROUP BY m.scope, m.key HAVING sum(r.d) <> 0 ORDER BY m.scope, m.key"
                " ON CONFLICT (scope, key) DO UPDATE SET live = c.live + EXCLUDED.live"
            )
            _MOVES[(self, counts)] = sql
        return sql

    def _before(self, s: Table, condition: ColumnElement[bool]) -> CTE:
        tracked = (self.hidden, *self._key_columns)
        return (
            select(*(s.c[n] for n in tracked))
            .where(condition)
            .with_for_update()
            .cte("counted_before")
            .prefix_with("MATERIALIZED")
        )

    # -- recounting --------------------------------------------------------------------------

    def recount_sql(self, summaries: str | None = None, counts: str | None = None) -> str:
        """One idempotent SQL statement that sets every counter of ``counts`` from a count of
        ``summaries`` (default: the live tables' names), deletes the counters of lists that no
        longer have a row, and returns the number of counters it corrected (0 when they were
        right). One scan of the summaries (``GROUPING SETS``). Run it where no projector
        writes meanwhile: in a rebuild's swap (which holds the read-model lock exclusively),
        or after loading summaries in bulk with the worker stopped."""
        # Built as text: it is also handed out as plain SQL (a service's RECOUNT_LIST_COUNTS).
        # Every name in it is a quoted identifier of this declaration, never input.
        q = _quote
        s = q(summaries or self.summaries.name)
        c = q(counts or self.counts.name)
        columns = self._key_columns
        if not columns:  # only the unfiltered list: no grouping sets needed
            fresh = (
                "SELECT 'all' AS scope, '' AS key, count(*) AS live"  # noqa: S608 (see above)
                f" FROM {s} WHERE NOT {q(self.hidden)}"
            )
        else:
            grouping = f"GROUPING({', '.join(q(n) for n in columns)})"
            scope_cases, key_cases, sets = [], [], []
            for scope in self.scopes:
                mask = sum(
                    1 << (len(columns) - 1 - i)
                    for i, n in enumerate(columns)
                    if n not in scope.columns
                )
                key = _key_sql(q(summaries or self.summaries.name), scope)
                scope_cases.append(f"WHEN {mask} THEN '{scope.name}'")
                key_cases.append(f"WHEN {mask} THEN {key}")
                sets.append(f"({', '.join(q(n) for n in scope.columns)})")
            fresh = (
                f"SELECT CASE {grouping} {' '.join(scope_cases)} END AS scope,"  # noqa: S608
                f" CASE {grouping} {' '.join(key_cases)} END AS key, count(*) AS live"
                f" FROM {s} WHERE NOT {q(self.hidden)}"
                f" GROUP BY GROUPING SETS ({', '.join(sets)})"
            )
        return (
            f"WITH fresh AS ({fresh}),"  # noqa: S608 (see above)
            " kept AS (SELECT scope, key, live FROM fresh WHERE key IS NOT NULL),"
            f" gone AS (DELETE FROM {c} AS c WHERE NOT EXISTS"
            " (SELECT FROM kept WHERE kept.scope = c.scope AND kept.key = c.key)"
            " RETURNING c.live),"
            f" put AS (INSERT INTO {c} AS c (scope, key, live)"
            " SELECT scope, key, live FROM kept ORDER BY scope, key"
            " ON CONFLICT (scope, key) DO UPDATE SET live = EXCLUDED.live"
            " WHERE c.live <> EXCLUDED.live RETURNING 1)"
            " SELECT (SELECT count(*) FROM gone WHERE live <> 0)"
            " + (SELECT count(*) FROM put) AS corrected"
        )


W = TypeVar("W", Insert, Update)


@dataclass(frozen=True)
class Counted(Generic[W]):
    """A write to summaries (``write``, to complete) and the CTE reading its rows before."""

    write: W
    before: CTE


def page_with_total(
    page: Select[Any],
    total: ColumnElement[int] | ScalarSelect[int],
    newest_first: Sequence[str],
    anchor: FromClause | None = None,
) -> Select[Any]:
    """One statement for a list: ``total`` (e.g. :meth:`ListCounts.total`) beside every row of
    ``page`` (a ``SELECT`` with its ``ORDER BY``, ``OFFSET`` and ``LIMIT``), both joined to
    ``anchor`` (the parent the list belongs to, e.g. the board: filter it with ``.where``; or
    one constant row). Rows come back in ``newest_first`` order (columns of ``page``,
    descending). A page past the end gives one row whose page columns are NULL, so the total
    is still there; no row at all means the anchor does not exist (:func:`split_page`)."""
    rows = page.subquery("page")
    base = anchor if anchor is not None else select(literal(1).label("one")).subquery("anchor")
    return (
        select(total.label("total"), *rows.c)
        .select_from(base.outerjoin(rows, true()))
        .order_by(*(rows.c[n].desc() for n in newest_first))
    )


def split_page(rows: Sequence[Row[Any]], present: str) -> tuple[list[Row[Any]], int] | None:
    """The page's rows and the total from the result of :func:`page_with_total`; None when the
    anchor is absent (no row). ``present`` is a never-NULL column of the page (its key)."""
    if not rows:
        return None
    return [r for r in rows if r._mapping[present] is not None], int(rows[0].total or 0)


def _after_reading(before: CTE) -> ColumnElement[bool]:
    """Always true, but evaluated once before the first row is written (a one-time filter on
    an uncorrelated subquery), so the rows before are read and locked first: read after the
    write, ``FOR UPDATE`` would skip the rows this very statement changed."""
    return select(func.count()).select_from(before).scalar_subquery() >= 0


def _key_sql(rows: str, scope: Scope) -> str:
    """The key of ``scope`` for a row of ``rows`` in SQL: ``''``, a column as text, or columns
    joined by ``:`` (NULL when one of them is NULL: the row counts in no list of the scope)."""
    if not scope.columns:
        return "''"
    return " || ':' || ".join(f"{rows}.{_quote(n)}::text" for n in scope.columns)


#: (counters, counter table name) -> the SQL of ``ListCounts._moves_sql``, built once.
_MOVES: dict[tuple[ListCounts, str], str] = {}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
