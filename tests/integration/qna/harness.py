"""Test harness for qna: the api and the worker in-process on a fresh database and topic prefix,
plus shortcuts to call the API, send saga commands, read replies and publish member events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.messaging.envelope import Envelope, from_consumer_record
from chassis.saga import SagaCommand, SagaReply, command_topic
from qna.adapters import tables
from qna.config import Settings
from tests.support.infra import wait_for
from tests.support.kafka import read_topic, send_envelope
from tests.support.tokens import TokenIssuer

Json = dict[str, Any]


@dataclass
class Member:
    """A caller with a token."""

    id: uuid.UUID
    headers: dict[str, str]


@dataclass
class QnaHarness:
    settings: Settings
    client: httpx.AsyncClient
    issuer: TokenIssuer
    engine: AsyncEngine

    # ------------------------------------------------------------ callers

    def member(self, role: str = "USER") -> Member:
        member_id = uuid.uuid4()
        return Member(member_id, self.issuer.headers(member_id, role))

    def admin(self) -> Member:
        return self.member("ADMIN")

    # ------------------------------------------------------------ API shortcuts

    async def ask(self, who: Member, title: str = "How?", bounty: int = 0) -> Json:
        response = await self.client.post(
            "/api/questions",
            json={"title": title, "content": "Details of the question.", "bounty": bounty},
            headers=who.headers,
        )
        assert response.status_code == 201, response.text
        body: Json = response.json()
        return body

    async def answer(self, who: Member, question_id: str, content: str = "Like this.") -> Json:
        response = await self.client.post(
            f"/api/questions/{question_id}/answers", json={"content": content}, headers=who.headers
        )
        assert response.status_code == 201, response.text
        body: Json = response.json()
        return body

    async def comment(self, who: Member, question_id: str, content: str = "Nice.") -> Json:
        response = await self.client.post(
            f"/api/questions/{question_id}/comments", json={"content": content}, headers=who.headers
        )
        assert response.status_code == 201, response.text
        body: Json = response.json()
        return body

    async def detail(self, question_id: str) -> Json:
        response = await self.client.get(f"/api/questions/{question_id}")
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def listed(self, question_id: str, **params: Any) -> Json | None:
        """The question's list item (read model), or None while it is not there."""
        response = await self.client.get("/api/questions", params={"size": 100, **params})
        assert response.status_code == 200, response.text
        return next((i for i in response.json()["items"] if i["id"] == question_id), None)

    async def wait_listed(self, question_id: str, message: str, **expected: Any) -> Json:
        """Wait until the read model shows the question with the ``expected`` fields."""

        async def matches() -> Json | None:
            item = await self.listed(question_id)
            if item is not None and all(item.get(k) == v for k, v in expected.items()):
                return item
            return None

        found: Json = await wait_for(matches, timeout=20, message=message)  # type: ignore[assignment]
        return found

    # ------------------------------------------------------------ messaging

    async def publish_member_event(self, event_type: str, **data: Any) -> str:
        """Publish a member event; returns its id."""
        envelope = Envelope.new(
            event_type,
            "member",
            {**data, "occurred_at": "2026-01-01T00:00:00+00:00"},
            key=str(data["member_id"]),
        )
        await send_envelope(
            self.settings.KAFKA_BOOTSTRAP_SERVERS, self.settings.topic("member.events"), envelope
        )
        return envelope.id

    async def redeliver(self, topic: str) -> int:
        """Send every record of ``topic`` again, as a relay does after a crash (same event ids)."""
        name = self.settings.topic(topic)
        records = await read_topic(self.settings.KAFKA_BOOTSTRAP_SERVERS, name, timeout=0)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.KAFKA_BOOTSTRAP_SERVERS, acks="all"
        )
        await producer.start()
        try:
            for record in records:
                await producer.send_and_wait(
                    name, value=record.value, key=record.key, headers=list(record.headers)
                )
        finally:
            await producer.stop()
        return len(records)

    async def send_command(
        self,
        command: str,
        payload: Json,
        *,
        saga_id: str,
        step: str,
        attempt: int = 1,
        compensates: str | None = None,
    ) -> None:
        body = SagaCommand(
            saga_id=saga_id,
            saga_type="test-saga",
            step=step,
            command=command,
            attempt=attempt,
            compensates=compensates,
            payload=payload,
        )
        envelope = Envelope.new(command, "saga", body.model_dump(mode="json"), key=saga_id)
        await send_envelope(
            self.settings.KAFKA_BOOTSTRAP_SERVERS,
            self.settings.topic(command_topic("qna")),
            envelope,
        )

    async def replies(self, saga_id: str, command: str, attempt: int) -> list[SagaReply]:
        records = await read_topic(
            self.settings.KAFKA_BOOTSTRAP_SERVERS, self.settings.topic("saga.replies"), timeout=0
        )
        found = []
        for record in records:
            env = from_consumer_record(record)
            reply = SagaReply.model_validate(env.data)
            if (reply.saga_id, reply.command, reply.attempt) == (saga_id, command, attempt):
                found.append(reply)
        return found

    async def command(
        self,
        command: str,
        payload: Json,
        *,
        saga_id: str | None = None,
        step: str = "step",
        attempt: int = 1,
        compensates: str | None = None,
        expect_replies: int = 1,
    ) -> SagaReply:
        """Send a command and wait for its reply; ``expect_replies`` counts the replies to this
        saga, command and attempt, for a command sent more than once."""
        saga_id = saga_id or f"saga-{uuid.uuid4().hex[:12]}"
        await self.send_command(
            command,
            payload,
            saga_id=saga_id,
            step=step,
            attempt=attempt,
            compensates=compensates,
        )

        async def arrived() -> list[SagaReply]:
            found = await self.replies(saga_id, command, attempt)
            return found if len(found) >= expect_replies else []

        found: list[SagaReply] = await wait_for(  # type: ignore[assignment]
            arrived, timeout=30, message=f"the reply to {command}"
        )
        return found[-1]

    # ------------------------------------------------------------ database

    async def summaries(self) -> list[Json]:
        """Every row of the read model (tombstones included), in a stable order."""
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(tables.question_summaries).order_by(tables.question_summaries.c.id)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    async def author_withdrawn(self, member_id: uuid.UUID) -> bool:
        async with self.engine.connect() as conn:
            withdrawn = await conn.scalar(
                select(tables.authors.c.withdrawn).where(tables.authors.c.member_id == member_id)
            )
        return bool(withdrawn)

    async def question_row(self, question_id: str) -> Json:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(tables.questions).where(
                            tables.questions.c.id == uuid.UUID(question_id)
                        )
                    )
                )
                .mappings()
                .one()
            )
        return dict(row)
