"""Pagination: one query-parameter contract (page from 1, size 1..100) and one response shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """``{items, total, page, size}``."""

    items: list[T]
    total: int
    page: int
    size: int


@dataclass(frozen=True)
class PageParams:
    page: int
    size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


async def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PageParams:
    return PageParams(page, size)


Pagination = Annotated[PageParams, Depends(page_params)]
