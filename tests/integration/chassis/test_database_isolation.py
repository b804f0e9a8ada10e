"""Database per service: each service role can reach its own database and is refused the others'."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.support.infra import Infra

pytestmark = pytest.mark.integration
SERVICES = ("member", "board", "qna", "saga")


def _service_urls() -> dict[str, str]:
    urls = {s: os.environ.get(f"{s.upper()}_DATABASE_URL", "") for s in SERVICES}
    return {s: u.replace("postgresql+asyncpg://", "postgresql://") for s, u in urls.items() if u}


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))


async def _connect_and_close(url: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.close()


@pytest.mark.parametrize("role", SERVICES)
async def test_a_service_role_is_refused_every_other_service_database(
    infra: Infra, role: str
) -> None:
    urls = _service_urls()
    if infra.mode != "local" or len(urls) != len(SERVICES):
        pytest.skip("the per-service databases are provisioned by deploy/local (make test)")
    own = await asyncpg.connect(urls[role])
    try:
        assert await own.fetchval("SELECT current_database()") == role
    finally:
        await own.close()
    for other in SERVICES:
        if other == role:
            continue
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _connect_and_close(_with_database(urls[role], other))
