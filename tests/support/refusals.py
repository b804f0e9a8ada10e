"""Assertions for refused input: a 422 problem naming where the bad input was (chassis.input_guard)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

#: A body with a NUL escape, and one with a lone surrogate escape, in the string ``"a..b"``.
NUL = "\\u0000"
LONE_SURROGATE = "\\ud800"


def raw_json(template: str, bad: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """``httpx`` arguments sending ``template`` with ``{bad}`` replaced, as JSON text (a client's
    encoder cannot produce a lone surrogate, so the escape is written by hand), plus ``headers``."""
    return {
        "content": template.replace("{bad}", bad).encode(),
        "headers": {**(headers or {}), "Content-Type": "application/json"},
    }


def assert_refused(response: httpx.Response, *loc: str | int) -> dict[str, Any]:
    """422 ``application/problem+json`` with an error whose ``loc`` starts with ``loc``."""
    assert response.status_code == 422, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json", response.headers
    problem: dict[str, Any] = response.json()
    assert problem["status"] == 422
    locs = [error["loc"] for error in problem["errors"]]
    assert any(found[: len(loc)] == list(loc) for found in locs), (loc, locs)
    return problem


async def count_rows(engine: AsyncEngine, table: Table) -> int:
    """Rows in ``table``: compared before and after a refused request (nothing stored changes)."""
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())
