"""Semantic lock (chassis): the local author copy board and qna both create has one shape."""

from __future__ import annotations

from sqlalchemy import MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from chassis.author_lock import authors_table

PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _ddl(table: Table) -> str:
    return str(CreateTable(table).compile(dialect=PG)).strip()


def test_the_table_has_the_columns_the_lock_and_the_copy_write() -> None:
    table = authors_table(MetaData())
    assert _ddl(table) == (
        "CREATE TABLE authors (\n"
        "\tmember_id UUID NOT NULL, \n"
        "\tnickname VARCHAR(100), \n"
        "\twithdrawn BOOLEAN DEFAULT false NOT NULL, \n"
        "\tprofile_version INTEGER DEFAULT 0 NOT NULL, \n"
        "\twrites_refused_by_sagas VARCHAR(64)[] DEFAULT '{}' NOT NULL, \n"
        "\tupdated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, \n"
        "\tPRIMARY KEY (member_id)\n"
        ")"
    )


def test_each_metadata_gets_its_own_table_under_the_name_given() -> None:
    first, second = MetaData(), MetaData()
    a, b = authors_table(first), authors_table(second, name="member_copy")
    assert first.tables == {"authors": a}
    assert second.tables == {"member_copy": b}
    assert _ddl(b) == _ddl(a).replace("CREATE TABLE authors", "CREATE TABLE member_copy")
