"""A board service running in-process against real PostgreSQL, Kafka and Redis, and what tests do with it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from board.adapters.first_page_cache import FirstPageCache
from board.adapters.tables import post_summaries
from board.config import Settings
from chassis.messaging.envelope import Envelope, from_consumer_record, to_kafka
from chassis.saga import SagaCommand
from tests.support.infra import wait_for
from tests.support.tokens import TokenIssuer


@dataclass
class BoardStack:
    settings: Settings
    client: httpx.AsyncClient
    issuer: TokenIssuer
    engine: AsyncEngine
    producer: AIOKafkaProducer | None = None
    #: The api's first-page cache (None when the settings turn it off).
    first_pages: FirstPageCache | None = None

    # -- HTTP ------------------------------------------------------------------------------------

    def auth(self, member_id: uuid.UUID, role: str = "USER") -> dict[str, str]:
        return self.issuer.headers(member_id, role)

    async def board_id(self, slug: str) -> str:
        response = await self.client.get("/api/boards")
        assert response.status_code == 200, response.text
        return str(next(b["id"] for b in response.json() if b["slug"] == slug))

    async def write_post(
        self, member_id: uuid.UUID, title: str, content: str = "본문", *, slug: str = "free"
    ) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/boards/{await self.board_id(slug)}/posts",
            json={"title": title, "content": content},
            headers=self.auth(member_id),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def board_posts(self, board_id: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(f"/api/boards/{board_id}/posts", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for_item(
        self,
        board_id: str,
        post_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        message: str,
    ) -> dict[str, Any]:
        """Poll the board's list (the read model) until the post's item satisfies ``predicate``."""

        async def item() -> dict[str, Any] | None:
            page = await self.board_posts(board_id, size=100)
            found = next((i for i in page["items"] if i["id"] == post_id), None)
            return found if found is not None and predicate(found) else None

        found = await wait_for(item, timeout=20, message=message)
        assert isinstance(found, dict)
        return found

    # -- read model --------------------------------------------------------------------------------

    async def summaries(self) -> list[dict[str, Any]]:
        """Every row of ``post_summaries`` (tombstones included), in a stable order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(post_summaries).order_by(post_summaries.c.post_id))
            return [dict(r._mapping) for r in rows]

    # -- Kafka -----------------------------------------------------------------------------------

    async def send(
        self,
        topic: str,
        event_type: str,
        key: str,
        data: dict[str, Any],
        *,
        source: str = "tests",
        event_id: str | None = None,
    ) -> Envelope:
        """Publish a CloudEvent to the test's own (prefixed) topic and wait for the ack."""
        assert self.producer is not None, "this stack has no producer"
        env = Envelope.new(event_type, source, data, key=key)
        if event_id is not None:
            env = Envelope(
                id=event_id, type=env.type, source=env.source, data=env.data, subject=key, key=key
            )
        k, value, headers = to_kafka(env)
        await self.producer.send_and_wait(
            self.settings.topic(topic), value=value, key=k, headers=headers
        )
        return env

    async def send_saga_command(self, command: SagaCommand) -> None:
        await self.send(
            "saga.board.commands",
            command.command,
            command.saga_id,
            command.model_dump(mode="json"),
            source="saga",
        )

    async def saga_reply(self, saga_id: str, command: str, timeout: float = 20.0) -> dict[str, Any]:
        """The participant's reply to ``command`` of ``saga_id``, read from ``saga.replies``."""
        consumer = AIOKafkaConsumer(
            self.settings.topic("saga.replies"),
            bootstrap_servers=self.settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for r in records:
                        env = from_consumer_record(r)
                        if (
                            env.data.get("saga_id") == saga_id
                            and env.data.get("command") == command
                        ):
                            return env.data
        finally:
            await consumer.stop()
        raise AssertionError(f"no reply to {command} of saga {saga_id} within {timeout}s")


async def eventually(check: Callable[[], Awaitable[bool]], message: str) -> None:
    await wait_for(check, timeout=20, message=message)
