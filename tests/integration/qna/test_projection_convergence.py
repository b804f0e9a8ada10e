"""question_summaries converges whatever the order and multiplicity of events, and a DLQ replay repairs it (issue 11)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, update

from chassis.auth import JwksVerifier
from chassis.db import create_engine, create_session_factory, inbox_table, outbox_table, utcnow
from chassis.messaging.envelope import Envelope
from chassis.messaging.producer import create_producer
from qna.adapters import tables
from qna.bootstrap import build_api, build_worker
from qna.config import Settings
from qna.entrypoints.event_handlers import read_model_handler
from qna.service_layer import saga_steps
from qna.service_layer.projector import READ_MODEL, apply
from qna.service_layer.unit_of_work import QnaUnitOfWork
from tests.integration.qna.harness import Member, QnaHarness
from tests.support import projections
from tests.support.tokens import TokenIssuer

pytestmark = pytest.mark.integration

SEEDS = (1, 2, 3, 4)


@asynccontextmanager
async def _api_only(settings: Settings, issuer: TokenIssuer) -> AsyncIterator[QnaHarness]:
    """The qna api without its worker: the events stay in the outbox for the test to deliver."""
    api = build_api(settings)
    api.state.verifier = JwksVerifier(issuer.fetch, issuer="msa-member", audience="msa")
    engine = create_engine(settings.DATABASE_URL, pool_size=2)
    try:
        async with (
            api.router.lifespan_context(api),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=api), base_url="http://test"
            ) as client,
        ):
            yield QnaHarness(settings, client, issuer, engine)
    finally:
        await engine.dispose()


def _member_event(event_type: str, who: Member, **data: Any) -> Envelope:
    return Envelope.new(event_type, "member", {"member_id": str(who.id), **data}, key=str(who.id))


async def _history(qna: QnaHarness) -> list[Envelope]:
    """Questions asked, edited, answered, commented, accepted under a saga, closed and reopened
    by a compensated withdrawal, anonymized by a real one, deleted; with the members' events."""
    alice, bob, carol = qna.member(), qna.member(), qna.member()
    events = [
        _member_event("MemberRegistered", who, nickname=name, profile_version=1)
        for who, name in ((alice, "alice"), (bob, "bob"), (carol, "carol"))
    ]
    first = await qna.ask(alice, "First?", bounty=10)
    second = await qna.ask(bob, "Second?")
    third = await qna.ask(bob, "Third?")
    edited = await qna.client.patch(
        f"/api/questions/{first['id']}", json={"title": "First, edited?"}, headers=alice.headers
    )
    assert edited.status_code == 200, edited.text
    accepted = await qna.answer(bob, first["id"])
    dropped = await qna.answer(carol, first["id"])
    await qna.answer(carol, second["id"])
    await qna.answer(alice, third["id"])
    await qna.comment(alice, first["id"])
    removed = await qna.client.delete(
        f"/api/questions/{first['id']}/answers/{dropped['id']}", headers=carol.headers
    )
    assert removed.status_code == 204, removed.text
    sessions = create_session_factory(qna.engine)
    question_id, answer_id = uuid.UUID(first["id"]), uuid.UUID(accepted["id"])
    steps: list[Callable[[QnaUnitOfWork], Awaitable[object]]] = [
        lambda uow: saga_steps.reserve_acceptance(
            uow, "accept-1", question_id, answer_id, alice.id
        ),
        lambda uow: saga_steps.confirm_acceptance(uow, "accept-1", question_id, answer_id),
        lambda uow: saga_steps.retire_author(uow, "withdraw-bob", bob.id),  # compensated:
        lambda uow: saga_steps.restore_author(uow, "withdraw-bob", bob.id),
        lambda uow: saga_steps.retire_author(uow, "withdraw-carol", carol.id),
    ]
    for step in steps:
        async with QnaUnitOfWork(sessions) as uow:
            await step(uow)
            await uow.commit()
    gone = await qna.client.delete(f"/api/questions/{third['id']}", headers=bob.headers)
    assert gone.status_code == 204, gone.text
    events += [
        _member_event("MemberProfileChanged", alice, nickname="alice2", profile_version=2),
        _member_event("MemberWithdrawn", carol),
    ]
    return events + await projections.outbox_events(qna.engine)


async def _project(qna: QnaHarness, events: Sequence[Envelope]) -> list[list[dict[str, Any]]]:
    """Start from an empty read model and feed ``events`` to the worker's real projector."""
    async with qna.engine.begin() as conn:
        for table in (
            tables.question_summaries,
            tables.question_summary_answers,
            tables.question_summary_authors,
        ):
            await conn.execute(delete(table))
        await conn.execute(delete(inbox_table).where(inbox_table.c.consumer == READ_MODEL.consumer))
    sessions = create_session_factory(qna.engine)
    projector = read_model_handler(lambda: QnaUnitOfWork(sessions), "qna")
    for env in events:
        await projector(env)
    return [
        await projections.rows(qna.engine, tables.question_summaries, "id"),
        await projections.rows(qna.engine, tables.question_summary_answers, "kind", "child_id"),
    ]


async def test_the_read_model_is_the_same_for_every_order_and_multiplicity(
    settings: Settings, issuer: TokenIssuer
) -> None:
    async with _api_only(settings, issuer) as qna:
        events = await _history(qna)
        kinds = {e.type for e in events}
        assert {"AnswerAccepted", "QuestionClosed", "QuestionReopened", "AnswerDeleted"} <= kinds
        in_order = await _project(qna, events)

        summaries = {r["id"]: r for r in in_order[0]}
        async with qna.engine.connect() as conn:
            written = {r.id: r for r in await conn.execute(select(tables.questions))}
            per_question = await conn.execute(
                select(tables.answers.c.question_id, func.count()).group_by(
                    tables.answers.c.question_id
                )
            )
            answers: dict[uuid.UUID, int] = {r[0]: r[1] for r in per_question}
        assert len(written) == 2
        assert len(summaries) == 3  # and the deleted one as a tombstone
        for question_id, question in written.items():  # what the write model implies
            row = summaries[question_id]
            assert not row["deleted"]
            assert (row["title"], row["status"], row["answer_count"], row["bounty"]) == (
                question.title,
                question.status,
                answers.get(question_id, 0),
                question.bounty,
            )
            assert row["accepted_answer_id"] == question.accepted_answer_id
        assert {r["author_nickname"] for r in summaries.values() if not r["deleted"]} == {
            "alice2",
            "bob",
        }

        for seed in SEEDS:
            shuffled = projections.shuffled_with_duplicates(events, seed)
            assert await _project(qna, shuffled) == in_order, f"seed {seed}"


async def test_a_replayed_dead_letter_repairs_the_answer_count(
    settings: Settings, issuer: TokenIssuer
) -> None:
    """One AnswerPosted dead-lettered by a database outage while newer events of the same
    question (more answers, an edit) went through: the list is wrong until the DLQ replay."""
    async with _api_only(settings, issuer) as qna:
        asker = qna.member()
        question = await qna.ask(asker, "Many answers?")
        for _ in range(30):
            await qna.answer(qna.member(), question["id"])
        edited = await qna.client.patch(
            f"/api/questions/{question['id']}",
            json={"title": "Many answers, edited?"},
            headers=asker.headers,
        )
        assert edited.status_code == 200, edited.text
        events = await projections.outbox_events(qna.engine)
        async with qna.engine.begin() as conn:  # this test publishes them itself
            await conn.execute(update(outbox_table).values(published_at=utcnow()))
        lost = [e for e in events if e.type == "AnswerPosted"][15]

        topic = settings.topic("qna.events")
        producer = create_producer(settings.kafka_connection(), "tests")
        await producer.start()
        try:
            for offset, env in enumerate(events):
                if env is lost:
                    await projections.dead_letter(
                        producer,
                        topic,
                        env,
                        group=settings.topic("qna-projector"),
                        offset=offset,
                    )
                else:
                    await projections.produce(producer, topic, env)
        finally:
            await producer.stop()

        worker = build_worker(settings)
        async with worker.router.lifespan_context(worker):
            item = await qna.wait_listed(
                question["id"], "the newer events", title="Many answers, edited?"
            )
            assert item["answer_count"] == 29  # the dead-lettered answer is missing

            await projections.chassis_dlq_replay(
                "qna.events",
                bootstrap=settings.KAFKA_BOOTSTRAP_SERVERS,
                prefix=settings.KAFKA_TOPIC_PREFIX,
            )
            item = await qna.wait_listed(
                question["id"], "the replayed answer counted", answer_count=30
            )
        async with qna.engine.connect() as conn:
            written = await conn.scalar(
                select(func.count())
                .select_from(tables.answers)
                .where(tables.answers.c.question_id == uuid.UUID(question["id"]))
            )
        assert written == item["answer_count"] == 30
        assert item["title"] == "Many answers, edited?"


async def test_a_nickname_change_racing_a_new_question_reaches_it(
    settings: Settings, issuer: TokenIssuer
) -> None:
    """Two worker replicas: one projects QuestionAsked (not yet committed) while the other
    handles the author's MemberProfileChanged. The change must reach the new summary too;
    without the author lock that row keeps the old nickname for good."""
    async with _api_only(settings, issuer) as qna:
        alice = qna.member()
        sessions = create_session_factory(qna.engine)
        projector = read_model_handler(lambda: QnaUnitOfWork(sessions), "qna")
        await projector(
            _member_event("MemberRegistered", alice, nickname="예전", profile_version=1)
        )
        question_id = uuid.uuid4()
        now = utcnow().isoformat()
        asked = Envelope.new(
            "QuestionAsked",
            "qna",
            {
                "question_id": str(question_id),
                "author_id": str(alice.id),
                "title": "새 질문",
                "bounty": 0,
                "status": "OPEN",
                "created_at": now,
                "occurred_at": now,
                "version": 1,
            },
            key=str(question_id),
        )
        async with sessions() as first, first.begin():
            await apply(first, READ_MODEL.live, asked)  # replica 1, not committed yet
            renamed = asyncio.ensure_future(
                projector(
                    _member_event(
                        "MemberProfileChanged", alice, nickname="새이름", profile_version=2
                    )
                )
            )
            await asyncio.sleep(1.0)  # replica 2 runs meanwhile
        await asyncio.wait_for(renamed, 10)
        async with qna.engine.connect() as conn:
            shown = await conn.scalar(
                select(tables.question_summaries.c.author_nickname).where(
                    tables.question_summaries.c.id == question_id
                )
            )
        assert shown == "새이름"


async def test_a_withdrawn_members_nickname_is_erased_from_the_read_model(
    settings: Settings, issuer: TokenIssuer
) -> None:
    """A withdrawn member's nickname outlives the withdrawal in the read model: MemberWithdrawn
    erases it from the projector's copy and from the member's summaries, and a nickname event
    that comes later (a newer profile version, as a replay from a dead-letter topic may bring)
    writes it back nowhere, in either order."""
    async with _api_only(settings, issuer) as qna:
        leaving = qna.member()
        asked = await qna.ask(leaving, "Still here?")
        question = (await projections.outbox_events(qna.engine))[0]
        assert question.type == "QuestionAsked"
        named = _member_event("MemberRegistered", leaving, nickname="leaving", profile_version=1)
        gone = _member_event("MemberWithdrawn", leaving)
        late = _member_event("MemberProfileChanged", leaving, nickname="back", profile_version=2)
        for events in ([named, question, gone, late], [late, gone, named, question]):
            summaries, _ = await _project(qna, events)
            [summary] = summaries
            assert summary["id"] == uuid.UUID(asked["id"])
            assert (summary["author_nickname"], summary["author_withdrawn"]) == (None, True)
            [copy] = await projections.rows(qna.engine, tables.question_summary_authors)
            assert (copy["nickname"], copy["withdrawn"]) == (None, True), events
