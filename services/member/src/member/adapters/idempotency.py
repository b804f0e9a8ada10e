"""Idempotent POST: the chassis ``Idempotency-Key`` store behind the service layer's port.

member alone adapts ``chassis.idempotency`` to a port (``IdempotencyStore``) instead of using
``IdempotentRequest`` as board and qna do: its sign-up use case is unit-tested with a fake of
that port (``service_layer/ports.py`` says why member has ports).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from chassis import idempotency
from member.service_layer.ports import StoredResult


class SqlIdempotencyStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, scope: str, key: str, fingerprint: str) -> StoredResult | None:
        stored = await idempotency.claim(self.session, scope, key, fingerprint)
        return None if stored is None else StoredResult(stored.status_code, stored.body)

    async def complete(self, scope: str, key: str, status_code: int, body: Any) -> None:
        await idempotency.complete(self.session, scope, key, status_code, body)
