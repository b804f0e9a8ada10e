"""Semantic lock on the author: a write racing RetireAuthor is either covered by it or refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from chassis.db import create_session_factory
from qna.adapters import tables
from qna.domain.model import Question
from qna.service_layer import saga_steps
from qna.service_layer.unit_of_work import QnaUnitOfWork
from tests.integration.qna.harness import Json, Member, QnaHarness

pytestmark = pytest.mark.integration

ANONYMOUS = {"id": None, "nickname": "탈퇴한 회원"}


async def _rows_by(qna: QnaHarness, member_id: uuid.UUID) -> tuple[int, int, int]:
    """(questions, answers, comments) whose author_id is the member, in the write model."""
    counts = []
    async with qna.engine.connect() as conn:
        for table in (tables.questions, tables.answers, tables.question_comments):
            n = await conn.scalar(
                select(func.count()).select_from(table).where(table.c.author_id == member_id)
            )
            counts.append(int(n or 0))
    return counts[0], counts[1], counts[2]


def _assert_refused(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail


async def _write(qna: QnaHarness, who: Member, kind: str, question_id: str) -> httpx.Response:
    if kind == "question":
        return await qna.client.post(
            "/api/questions",
            json={"title": "Late", "content": "Asked while leaving.", "bounty": 0},
            headers=who.headers,
        )
    path = "answers" if kind == "answer" else "comments"
    return await qna.client.post(
        f"/api/questions/{question_id}/{path}", json={"content": "late"}, headers=who.headers
    )


async def _retire(qna: QnaHarness, member: Member, saga_id: str) -> None:
    reply = await qna.command(
        "RetireAuthor", {"member_id": str(member.id)}, saga_id=saga_id, step="retire-author"
    )
    assert reply.outcome == "SUCCESS", reply.reason


async def test_writes_are_refused_after_retire_author_until_restore_author(
    qna: QnaHarness,
) -> None:
    leaving, other, answerer = qna.member(), qna.member(), qna.member()
    own = await qna.ask(leaving, title="Mine")
    answered = await qna.ask(leaving, title="Answered")
    their_answer = await qna.answer(answerer, answered["id"])
    others = await qna.ask(other, title="Someone else's")
    before = await _rows_by(qna, leaving.id)
    withdrawal = f"withdraw-{uuid.uuid4().hex[:8]}"

    await _retire(qna, leaving, withdrawal)

    for kind in ("question", "answer", "comment"):
        _assert_refused(await _write(qna, leaving, kind, others["id"]), "the member is withdrawing")
    edit = await qna.client.patch(
        f"/api/questions/{own['id']}", json={"title": "Changed"}, headers=leaving.headers
    )
    assert edit.status_code == 403
    check = await qna.client.get(
        f"/internal/questions/{answered['id']}/answers/{their_answer['id']}/acceptance-check",
        headers=leaving.headers,
    )
    _assert_refused(check, "the member is withdrawing")
    # RetireAuthor anonymized what they had; nothing new names them
    assert await _rows_by(qna, leaving.id) == (0, 0, 0)
    assert before == (2, 0, 0)
    # an admin acting on others' content is not the member's write
    admin = qna.admin()
    removed = await qna.client.delete(f"/api/questions/{others['id']}", headers=admin.headers)
    assert removed.status_code == 204, removed.text

    restored = await qna.command(
        "RestoreAuthor",
        {"member_id": str(leaving.id)},
        saga_id=withdrawal,
        step="retire-author",
        compensates="RetireAuthor",
    )
    assert restored.outcome == "SUCCESS", restored.reason

    asked = await qna.ask(leaving, title="Back again")
    await qna.answer(leaving, asked["id"])
    await qna.comment(leaving, asked["id"])
    assert await _rows_by(qna, leaving.id) == (3, 1, 1)


async def test_a_member_qna_never_saw_is_refused_after_retire_author(qna: QnaHarness) -> None:
    """No author row, no question: RetireAuthor still sets the mark (it upserts the row)."""
    stranger, other = qna.member(), qna.member()
    others = await qna.ask(other)
    await _retire(qna, stranger, f"withdraw-{uuid.uuid4().hex[:8]}")

    for kind in ("question", "answer", "comment"):
        _assert_refused(
            await _write(qna, stranger, kind, others["id"]), "the member is withdrawing"
        )
    assert await _rows_by(qna, stranger.id) == (0, 0, 0)


@pytest.mark.parametrize("kind", ["question", "answer", "comment"])
async def test_a_write_in_flight_is_waited_for_and_retired_by_the_step(
    qna: QnaHarness, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The write passed its check and is paused before it stores its rows; RetireAuthor runs
    meanwhile. The step must wait for the write, then close and anonymize what it created."""
    leaving, other = qna.member(), qna.member()
    others = await qna.ask(other, title="Someone else's")
    reached, release = asyncio.Event(), asyncio.Event()
    armed = [True]
    original = QnaUnitOfWork.save

    async def paused_save(self: QnaUnitOfWork, question: Question) -> None:
        if armed[0]:  # only the member's write; the step saves after it
            armed[0] = False
            reached.set()
            await release.wait()
        await original(self, question)

    monkeypatch.setattr(QnaUnitOfWork, "save", paused_save)
    write = asyncio.create_task(_write(qna, leaving, kind, others["id"]))
    await asyncio.wait_for(reached.wait(), timeout=10)

    withdrawal = f"withdraw-{uuid.uuid4().hex[:8]}"
    sessions = create_session_factory(qna.engine)

    async def retire() -> dict[str, Any]:
        async with QnaUnitOfWork(sessions) as uow:
            result = await saga_steps.retire_author(uow, withdrawal, leaving.id)
            await uow.commit()
        return result

    step = asyncio.create_task(retire())
    done, _ = await asyncio.wait({step}, timeout=1.5)
    assert not done, "RetireAuthor ran past a write that was in flight"

    release.set()
    written = await asyncio.wait_for(write, timeout=10)
    assert written.status_code == 201, written.text
    result = await asyncio.wait_for(step, timeout=10)

    assert await _rows_by(qna, leaving.id) == (0, 0, 0)  # the new row names no one
    if kind == "question":
        assert result == {"closed_questions": 1, "changed_questions": 1}
        detail: Json = await qna.detail(written.json()["id"])
        assert (detail["status"], detail["author"]) == ("CLOSED", ANONYMOUS)
    else:
        assert result == {"closed_questions": 0, "changed_questions": 1}
        detail = await qna.detail(others["id"])
        entries = detail["answers"] if kind == "answer" else detail["comments"]
        assert [e["author"] for e in entries] == [ANONYMOUS]
    # and the next write is refused
    _assert_refused(await _write(qna, leaving, "question", ""), "the member is withdrawing")


async def test_a_refused_retire_author_leaves_no_mark(qna: QnaHarness) -> None:
    """RetireAuthor refused (a question ACCEPTING) rolls its mark back with the rest."""
    leaving, answerer = qna.member(), qna.member()
    accepting = await qna.ask(leaving, title="Accepting")
    answer = await qna.answer(answerer, accepting["id"])
    reserved = await qna.command(
        "ReserveAcceptance",
        {"question_id": accepting["id"], "answer_id": answer["id"], "asker_id": str(leaving.id)},
    )
    assert reserved.outcome == "SUCCESS", reserved.reason

    refused = await qna.command("RetireAuthor", {"member_id": str(leaving.id)})

    assert refused.outcome == "FAILURE"
    asked = await qna.ask(leaving, title="Still here")
    assert (await qna.detail(asked["id"]))["author"]["id"] == str(leaving.id)
