"""Idempotent POST: a retried key returns the first result; concurrent retries wait for the first."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis import idempotency
from chassis.idempotency import IdempotentRequest
from chassis.problems import Unprocessable

pytestmark = pytest.mark.integration


async def create_once(
    sessions: async_sessionmaker[AsyncSession], key: str, body: dict[str, str], effects: list[str]
) -> idempotency.StoredResponse:
    fingerprint = idempotency.request_fingerprint(body)
    async with sessions() as session, session.begin():
        stored = await idempotency.claim(session, "user:POST:/things", key, fingerprint)
        if stored is not None:
            return stored
        await asyncio.sleep(0.2)  # the work takes a while, so the retry really overlaps
        effects.append(body["name"])
        result = {"id": f"thing-{len(effects)}", "name": body["name"]}
        await idempotency.complete(session, "user:POST:/things", key, 201, result)
        return idempotency.StoredResponse(201, result)


async def test_concurrent_retries_produce_one_effect_and_the_same_response(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    effects: list[str] = []
    first, second = await asyncio.gather(
        create_once(sessions, "k1", {"name": "a"}, effects),
        create_once(sessions, "k1", {"name": "a"}, effects),
    )
    assert effects == ["a"]
    assert first == second
    assert first.status_code == 201


async def test_a_reused_key_with_another_body_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    effects: list[str] = []
    await create_once(sessions, "k2", {"name": "a"}, effects)
    with pytest.raises(Unprocessable):
        await create_once(sessions, "k2", {"name": "b"}, effects)
    assert effects == ["a"]


async def test_a_bound_request_is_scoped_to_caller_and_route(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert IdempotentRequest.bind(None, caller="u1", method="POST", path="/x", body={}) is None
    mine = IdempotentRequest.bind("k", caller="u1", method="POST", path="/things", body={"a": 1})
    theirs = IdempotentRequest.bind("k", caller="u2", method="POST", path="/things", body={"a": 1})
    assert mine is not None
    assert theirs is not None
    async with sessions() as session, session.begin():
        assert await mine.claim(session) is None
        await mine.complete(session, 201, {"id": "first"})
    async with sessions() as session, session.begin():
        assert await theirs.claim(session) is None  # same key, another caller: its own request
        assert await mine.claim(session) == idempotency.StoredResponse(201, {"id": "first"})
