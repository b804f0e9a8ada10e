"""Idempotent POST: an ``Idempotency-Key`` makes a retry return the first result, stored with the effect."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.db import idempotency_table
from chassis.problems import Unprocessable

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def validate_key(key: str | None) -> str | None:
    """``key`` if usable: 1..``MAX_KEY_LENGTH`` printable characters (it is stored in the
    ``idempotency_keys`` table); 422 with the header's ``loc`` otherwise."""
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        message = f"must be 1..{MAX_KEY_LENGTH} printable characters"
        error = {"loc": ["header", "idempotency-key"], "msg": message, "type": "value_error"}
        raise Unprocessable(f"Idempotency-Key {message}", extra={"errors": [error]})
    return key


async def claim(
    session: AsyncSession, scope: str, key: str, fingerprint: str
) -> StoredResponse | None:
    """Claim ``key`` inside the current transaction, or return the first result stored for it.

    The placeholder insert takes the unique-index lock, so a concurrent retry waits for the
    first transaction and then sees its committed result; if the first rolled back, the retry
    proceeds as the first. A reused key with a different body is a 422.
    """
    inserted = (
        await session.execute(
            insert(idempotency_table)
            .values(scope=scope, key=key, request_hash=fingerprint, status_code=0, response={})
            .on_conflict_do_nothing()
            .returning(idempotency_table.c.key)
        )
    ).first()
    if inserted is not None:
        return None
    row = (
        await session.execute(
            select(idempotency_table).where(
                idempotency_table.c.scope == scope, idempotency_table.c.key == key
            )
        )
    ).one()
    if row.request_hash != fingerprint:
        raise Unprocessable("Idempotency-Key was already used with a different request")
    return StoredResponse(row.status_code, row.response)


async def complete(
    session: AsyncSession, scope: str, key: str, status_code: int, body: Any
) -> None:
    """Store the result in the same transaction as the effect it describes."""
    await session.execute(
        update(idempotency_table)
        .where(idempotency_table.c.scope == scope, idempotency_table.c.key == key)
        .values(status_code=status_code, response=json.loads(json.dumps(body, default=str)))
    )


@dataclass(frozen=True)
class IdempotentRequest:
    """An ``Idempotency-Key`` bound to what it was sent with: the caller, the route and the body."""

    scope: str
    key: str
    fingerprint: str

    @classmethod
    def bind(
        cls, key: str | None, *, caller: object, method: str, path: str, body: Any
    ) -> IdempotentRequest | None:
        """None without a key; otherwise the key scoped to ``caller`` and ``method path``."""
        if key is None:
            return None
        return cls(f"{caller}:{method}:{path}", key, request_fingerprint(body))

    @classmethod
    def of_route(
        cls, key: str | None, *, caller: object, request: Request, body: BaseModel
    ) -> IdempotentRequest | None:
        """``bind`` for a create route: scoped to the caller and the request's method and path,
        fingerprinted by the validated body (a reuse with another body is refused with 422)."""
        return cls.bind(
            key,
            caller=caller,
            method=request.method,
            path=request.url.path,
            body=body.model_dump(mode="json"),
        )

    async def claim(self, session: AsyncSession) -> StoredResponse | None:
        return await claim(session, self.scope, self.key, self.fingerprint)

    async def complete(self, session: AsyncSession, status_code: int, body: Any) -> None:
        await complete(session, self.scope, self.key, status_code, body)


async def idempotency_key_header(
    key: Annotated[
        str | None, Header(alias="idempotency-key", min_length=1, max_length=MAX_KEY_LENGTH)
    ] = None,
) -> str | None:
    """The ``Idempotency-Key`` header, validated (422 when unusable). The alias is lower-case, as
    HTTP/2 and ASGI write header names, so an error's ``loc`` is ``["header", "idempotency-key"]``."""
    return validate_key(key)


IdempotencyKeyHeader = Annotated[str | None, Depends(idempotency_key_header)]
