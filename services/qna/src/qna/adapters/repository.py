"""Repository: load a question aggregate (locked for the transaction) and store only what changed."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import author_lock
from qna.adapters import tables
from qna.domain.model import Actor, Answer, AuthorTraces, Comment, Question, QuestionStatus

Row = dict[str, Any]

_QUESTION_COLUMNS = (
    "id",
    "author_id",
    "title",
    "content",
    "bounty",
    "status",
    "version",
    "acceptance_saga_id",
    "pending_answer_id",
    "accepted_answer_id",
    "created_at",
    "updated_at",
)


def _question_row(question: Question) -> Row:
    row = {name: getattr(question, name) for name in _QUESTION_COLUMNS}
    row["status"] = question.status.value
    return row


class QuestionRepository:
    """Questions with their answers and comments. ``get`` locks the question row (FOR UPDATE), so
    concurrent changes to one aggregate are serialized and its version moves on one step at a time."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # what each loaded aggregate looked like in the database, to write only the differences
        self._stored: dict[uuid.UUID, tuple[Row, dict[uuid.UUID, Row], dict[uuid.UUID, Row]]] = {}

    async def get(self, question_id: uuid.UUID, *, lock: bool = True) -> Question | None:
        """The aggregate, its row locked until the transaction ends (``lock=False`` only to read)."""
        query = select(tables.questions).where(tables.questions.c.id == question_id)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        if row is None:
            return None
        answer_rows = (
            (
                await self.session.execute(
                    select(tables.answers)
                    .where(tables.answers.c.question_id == question_id)
                    .order_by(tables.answers.c.created_at, tables.answers.c.id)
                )
            )
            .mappings()
            .all()
        )
        comment_rows = (
            (
                await self.session.execute(
                    select(tables.question_comments)
                    .where(tables.question_comments.c.question_id == question_id)
                    .order_by(tables.question_comments.c.created_at, tables.question_comments.c.id)
                )
            )
            .mappings()
            .all()
        )
        question = Question(
            **{**row, "status": QuestionStatus(row["status"])},
            answers=[Answer(**a) for a in answer_rows],
            comments=[Comment(**c) for c in comment_rows],
        )
        self._remember(question)
        return question

    def _remember(self, question: Question) -> None:
        self._stored[question.id] = (
            _question_row(question),
            {a.id: asdict(a) for a in question.answers},
            {c.id: asdict(c) for c in question.comments},
        )

    async def save(self, question: Question) -> None:
        """Write the aggregate's changes: a new question, or the question row and the answers and
        comments added, changed or removed since it was loaded."""
        if question.deleted:
            await self.session.execute(
                delete(tables.questions).where(tables.questions.c.id == question.id)
            )
            self._stored.pop(question.id, None)
            return
        row = _question_row(question)
        if question.id not in self._stored:
            await self.session.execute(insert(tables.questions).values(**row))
            self._stored[question.id] = (row, {}, {})
        stored_question, stored_answers, stored_comments = self._stored[question.id]
        if row != stored_question:
            await self.session.execute(
                update(tables.questions).where(tables.questions.c.id == question.id).values(**row)
            )
        await self._sync(tables.answers, stored_answers, [asdict(a) for a in question.answers])
        await self._sync(
            tables.question_comments, stored_comments, [asdict(c) for c in question.comments]
        )
        self._remember(question)

    async def _sync(
        self, table: Table, stored: Mapping[uuid.UUID, Row], rows: Sequence[Row]
    ) -> None:
        current = {row["id"]: row for row in rows}
        gone = [i for i in stored if i not in current]
        if gone:
            await self.session.execute(delete(table).where(table.c.id.in_(gone)))
        for item_id, row in current.items():
            if item_id not in stored:
                await self.session.execute(insert(table).values(**row))
            elif stored[item_id] != row:
                await self.session.execute(update(table).where(table.c.id == item_id).values(**row))

    async def question_of_answer(self, answer_id: uuid.UUID) -> uuid.UUID | None:
        """The question an answer belongs to (to tell 'not on this question' from 'no such answer')."""
        return await self.session.scalar(
            select(tables.answers.c.question_id).where(tables.answers.c.id == answer_id)
        )

    async def ids_touched_by(self, member_id: uuid.UUID) -> list[uuid.UUID]:
        """Every question the member asked, answered or commented on, in a stable (lock) order."""
        asked = select(tables.questions.c.id).where(tables.questions.c.author_id == member_id)
        answered = select(tables.answers.c.question_id).where(
            tables.answers.c.author_id == member_id
        )
        commented = select(tables.question_comments.c.question_id).where(
            tables.question_comments.c.author_id == member_id
        )
        ids = (await self.session.scalars(asked.union(answered, commented))).all()
        return sorted(ids)


class AuthorRepository(author_lock.AuthorCopy):
    """The local copy of members (nickname, withdrawn), fed by member.events, with the semantic
    lock (``chassis.author_lock``)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, tables.authors)

    async def actor(self, member_id: uuid.UUID, *, is_admin: bool) -> Actor:
        """The caller of a write, holding the semantic lock on their row (chassis.author_lock):
        ``FOR SHARE`` until the transaction ends; 403 while the member is withdrawing or withdrawn.
        Take it before any question row, in the order RetireAuthor locks them."""
        withdrawn = await self.hold_for_write(member_id)
        return Actor(id=member_id, is_admin=is_admin, withdrawn=withdrawn)


class RetirementRepository:
    """What each RetireAuthor changed, keyed by saga id, so its compensation undoes exactly that."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        saga_id: str,
        question_id: uuid.UUID,
        member_id: uuid.UUID,
        *,
        closed: bool,
        traces: AuthorTraces,
    ) -> None:
        stmt = pg_insert(tables.author_retirements).values(
            saga_id=saga_id,
            question_id=question_id,
            member_id=member_id,
            question_closed=closed,
            question_anonymized=traces.question,
            answer_ids=list(traces.answer_ids),
            comment_ids=list(traces.comment_ids),
        )
        await self.session.execute(stmt.on_conflict_do_nothing())

    async def for_saga(self, saga_id: str) -> list[Row]:
        rows = (
            (
                await self.session.execute(
                    select(tables.author_retirements)
                    .where(tables.author_retirements.c.saga_id == saga_id)
                    .order_by(tables.author_retirements.c.question_id)
                )
            )
            .mappings()
            .all()
        )
        return [dict(r) for r in rows]

    async def forget(self, saga_id: str) -> None:
        await self.session.execute(
            delete(tables.author_retirements).where(tables.author_retirements.c.saga_id == saga_id)
        )
