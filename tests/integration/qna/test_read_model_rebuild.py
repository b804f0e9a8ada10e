"""The question_summaries read model rebuilt from the topics equals the one the live projector built."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from chassis.db import projection_checkpoint_table
from qna import bootstrap
from qna.adapters import tables
from qna.cli import main as qna_cli
from qna.service_layer.projector import READ_MODEL
from tests.integration.qna.harness import QnaHarness
from tests.support import projections
from tests.support.infra import wait_for
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


async def caught_up(qna: QnaHarness) -> bool:
    """The live projector's checkpoint has reached the end of both topics (one partition each)."""
    async with qna.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    projection_checkpoint_table.c.topic, projection_checkpoint_table.c.next_offset
                ).where(projection_checkpoint_table.c.projection == READ_MODEL.name)
            )
        ).all()
    checkpoints = {r.topic: r.next_offset for r in rows}
    for topic in READ_MODEL.topics:
        name = qna.settings.topic(topic)
        end = len(await read_topic(qna.settings.KAFKA_BOOTSTRAP_SERVERS, name, timeout=0))
        if checkpoints.get(name, 0) != end:
            return False
    async with qna.engine.connect() as conn:
        pending = await conn.scalar(
            text("SELECT count(*) FROM outbox_messages WHERE published_at IS NULL")
        )
    return bool(pending == 0)


async def catalog_names(qna: QnaHarness) -> dict[str, set[str]]:
    """The read model's tables with the names of their indexes and constraints, from the catalog:
    a swap must leave the names the migrations gave (the next migration refers to them)."""
    names: dict[str, set[str]] = {}
    async with qna.engine.connect() as conn:
        for table in READ_MODEL.tables:
            rows = await conn.execute(
                text(
                    "SELECT indexname FROM pg_indexes WHERE tablename = :t"
                    " UNION SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t)"
                ),
                {"t": table.name},
            )
            names[table.name] = {str(r[0]) for r in rows}
    return names


async def activity(qna: QnaHarness, tag: str) -> None:
    """A bit of everything the read model follows."""
    asker, answerer, renamed = qna.member(), qna.member(), qna.member()
    await qna.publish_member_event(
        "MemberRegistered", member_id=str(renamed.id), nickname=f"old-{tag}", role="USER"
    )
    first = await qna.ask(renamed, title=f"first {tag}", bounty=10)
    second = await qna.ask(asker, title=f"second {tag}")
    doomed = await qna.ask(asker, title=f"doomed {tag}")
    answer = await qna.answer(answerer, first["id"])
    await qna.answer(answerer, second["id"])
    extra = await qna.answer(asker, second["id"])
    await qna.comment(answerer, first["id"])
    await qna.client.delete(
        f"/api/questions/{second['id']}/answers/{extra['id']}", headers=asker.headers
    )
    await qna.client.patch(
        f"/api/questions/{second['id']}", headers=asker.headers, json={"title": f"second {tag}!"}
    )
    await qna.client.delete(f"/api/questions/{doomed['id']}", headers=asker.headers)
    for command in ("ReserveAcceptance", "ConfirmAcceptance"):
        reply = await qna.command(
            command,
            {"question_id": first["id"], "answer_id": answer["id"], "asker_id": str(renamed.id)},
            saga_id=f"accept-{tag}",
        )
        assert reply.outcome == "SUCCESS", reply.reason
    retired = await qna.command("RetireAuthor", {"member_id": str(asker.id)})
    assert retired.outcome == "SUCCESS", retired.reason
    await qna.publish_member_event(
        "MemberProfileChanged", member_id=str(renamed.id), nickname=f"new-{tag}"
    )
    # a question whose latest event is a count change (the case an off-by-one version guard breaks)
    counted = await qna.ask(answerer, title=f"counted {tag}")
    # not by ``asker``: RetireAuthor's semantic lock refuses their writes from now on
    await qna.answer(renamed, counted["id"])


async def test_a_rebuild_equals_the_live_read_model(
    qna: QnaHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated = await catalog_names(qna)
    assert all(migrated.values())
    await activity(qna, "a")
    await wait_for(lambda: caught_up(qna), timeout=30, message="the projector to catch up")
    live = await qna.summaries()
    assert len(live) == 4
    assert {r["title"]: r["author_nickname"] for r in live}["first a"] == "new-a"
    assert any(r["deleted"] for r in live)

    # the relay may publish an event twice (a crash between send and mark): the live projector
    # ignores the copies (inbox), the rebuild ignores them (versions)
    assert await qna.redeliver("qna.events") > 0
    await wait_for(lambda: caught_up(qna), timeout=30, message="the copies consumed")
    assert await qna.summaries() == live

    # damage the read model; the rebuild (through the CLI, as an operator runs it) repairs it
    async with qna.engine.begin() as conn:
        await conn.execute(text("UPDATE question_summaries SET answer_count = 99, title = 'wrong'"))
        await conn.execute(text("DELETE FROM question_summaries WHERE deleted"))
    for name, value in {
        "DATABASE_URL": qna.settings.DATABASE_URL,
        "KAFKA_BOOTSTRAP_SERVERS": qna.settings.KAFKA_BOOTSTRAP_SERVERS,
        "KAFKA_TOPIC_PREFIX": qna.settings.KAFKA_TOPIC_PREFIX,
    }.items():
        monkeypatch.setenv(name, value)
    answers = await projections.rows(
        qna.engine, tables.question_summary_answers, "kind", "child_id"
    )
    async with qna.engine.begin() as conn:
        await conn.execute(text("DELETE FROM question_summary_answers"))
    await asyncio.to_thread(qna_cli, ["rebuild-read-model"])
    assert await qna.summaries() == live
    assert await catalog_names(qna) == migrated
    assert (
        await projections.rows(qna.engine, tables.question_summary_answers, "kind", "child_id")
        == answers
    )

    # a rebuild while the live projector is busy: nothing is lost between the replay and the swap
    busy = asyncio.create_task(activity(qna, "b"))
    await asyncio.sleep(0.3)
    report = await bootstrap.rebuild_read_model(qna.settings)
    assert report.rows["question_summaries"] >= 4
    await busy
    await wait_for(lambda: caught_up(qna), timeout=30, message="the projector to catch up again")
    live_again = await qna.summaries()
    assert len(live_again) == 8
    report = await bootstrap.rebuild_read_model(qna.settings)
    assert report.rows["question_summaries"] == len(live_again)
    assert await qna.summaries() == live_again
    assert await catalog_names(qna) == migrated

    # the live projector carries on after a rebuild
    question = await qna.ask(qna.member(), title="after the rebuild")
    await qna.answer(qna.member(), question["id"])
    await qna.wait_listed(question["id"], "the new question and its answer", answer_count=1)
