"""Aggregate: a question with its answers and comments, guarding the acceptance state machine.

The question is the consistency boundary: answers and comments change only through it, each
change increments ``version`` and each recorded event carries the version after it. Status
moves only along ``TRANSITIONS``; ``ACCEPTING`` is the semantic lock held while an
answer-acceptance saga runs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from qna.domain.errors import InvalidState, InvalidTransition, InvalidValue, NotAllowed, NotFound
from qna.domain.events import (
    AnswerAccepted,
    AnswerDeleted,
    AnswerPosted,
    Event,
    QnaCommentAdded,
    QnaCommentDeleted,
    QuestionAsked,
    QuestionClosed,
    QuestionDeleted,
    QuestionReopened,
    QuestionUpdated,
)

TITLE_MAX_LENGTH = 200
CONTENT_MAX_LENGTH = 20_000
COMMENT_MAX_LENGTH = 2_000
BOUNTY_MAX = 1_000


class QuestionStatus(StrEnum):
    OPEN = "OPEN"
    ACCEPTING = "ACCEPTING"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


#: The whole state machine: operation -> (required status, resulting status). Nothing else moves.
TRANSITIONS: dict[str, tuple[QuestionStatus, QuestionStatus]] = {
    "reserve_acceptance": (QuestionStatus.OPEN, QuestionStatus.ACCEPTING),
    "cancel_acceptance": (QuestionStatus.ACCEPTING, QuestionStatus.OPEN),
    "confirm_acceptance": (QuestionStatus.ACCEPTING, QuestionStatus.RESOLVED),
    "close": (QuestionStatus.OPEN, QuestionStatus.CLOSED),
    "reopen": (QuestionStatus.CLOSED, QuestionStatus.OPEN),
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def checked_text(value: str, what: str, max_length: int) -> str:
    """Texts are 1..max_length characters and not blank."""
    if not value.strip() or len(value) > max_length:
        raise InvalidValue(f"{what} must be 1 to {max_length} characters and not blank")
    return value


def checked_bounty(value: int) -> int:
    if not 0 <= value <= BOUNTY_MAX:
        raise InvalidValue(f"bounty must be between 0 and {BOUNTY_MAX}")
    return value


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: a member (perhaps an admin, perhaps withdrawn)."""

    id: uuid.UUID
    is_admin: bool = False
    withdrawn: bool = False


@dataclass
class Answer:
    id: uuid.UUID
    question_id: uuid.UUID
    author_id: uuid.UUID | None
    content: str
    accepted: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass
class Comment:
    id: uuid.UUID
    question_id: uuid.UUID
    author_id: uuid.UUID | None
    content: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class AuthorTraces:
    """What anonymizing one member changed in one question: exactly what a restore puts back."""

    question: bool = False
    answer_ids: tuple[uuid.UUID, ...] = ()
    comment_ids: tuple[uuid.UUID, ...] = ()

    def __bool__(self) -> bool:
        return self.question or bool(self.answer_ids) or bool(self.comment_ids)


def _may_modify(actor: Actor, owner_id: uuid.UUID | None) -> bool:
    return actor.is_admin or (owner_id is not None and actor.id == owner_id)


@dataclass(eq=False)
class Question:
    id: uuid.UUID
    author_id: uuid.UUID | None
    title: str
    content: str
    bounty: int
    status: QuestionStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int = 0
    #: the saga holding (or having completed) the acceptance, and the answer it is about
    acceptance_saga_id: str | None = None
    pending_answer_id: uuid.UUID | None = None
    accepted_answer_id: uuid.UUID | None = None
    answers: list[Answer] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    deleted: bool = False
    events: list[Event] = field(default_factory=list)

    # ------------------------------------------------------------------ creation

    @classmethod
    def ask(cls, author: Actor, title: str, content: str, bounty: int = 0) -> Question:
        if author.withdrawn:
            raise NotAllowed("a withdrawn member cannot ask questions")
        now = utcnow()
        question = cls(
            id=uuid.uuid4(),
            author_id=author.id,
            title=checked_text(title, "title", TITLE_MAX_LENGTH),
            content=checked_text(content, "content", CONTENT_MAX_LENGTH),
            bounty=checked_bounty(bounty),
            status=QuestionStatus.OPEN,
            created_at=now,
            updated_at=now,
        )
        question.events.append(
            QuestionAsked(
                question_id=question.id,
                author_id=question.author_id,
                title=question.title,
                bounty=question.bounty,
                status=question.status.value,
                created_at=question.created_at,
                version=question._next_version(),
            )
        )
        return question

    # ------------------------------------------------------------------ bookkeeping

    def _next_version(self) -> int:
        """Every change moves the version on by one; an event carries the version after it."""
        self.version += 1
        self.updated_at = utcnow()
        return self.version

    def _transition(self, operation: str) -> None:
        source, target = TRANSITIONS[operation]
        if self.status is not source:
            raise InvalidTransition(
                f"cannot {operation.replace('_', ' ')}: the question is {self.status.value}"
            )
        self.status = target

    def _question_updated(self) -> None:
        self.events.append(
            QuestionUpdated(
                question_id=self.id,
                author_id=self.author_id,
                title=self.title,
                bounty=self.bounty,
                status=self.status.value,
                version=self._next_version(),
            )
        )

    def pull_events(self) -> list[Event]:
        """Hand the recorded events to the unit of work (once)."""
        recorded, self.events = self.events, []
        return recorded

    def find_answer(self, answer_id: uuid.UUID) -> Answer | None:
        return next((a for a in self.answers if a.id == answer_id), None)

    def find_comment(self, comment_id: uuid.UUID) -> Comment | None:
        return next((c for c in self.comments if c.id == comment_id), None)

    def _answer(self, answer_id: uuid.UUID) -> Answer:
        answer = self.find_answer(answer_id)
        if answer is None:
            raise NotFound("the question has no such answer")
        return answer

    def _comment(self, comment_id: uuid.UUID) -> Comment:
        comment = self.find_comment(comment_id)
        if comment is None:
            raise NotFound("the question has no such comment")
        return comment

    # ------------------------------------------------------------------ the question itself

    def _require_editable(self, actor: Actor, action: str) -> None:
        if not _may_modify(actor, self.author_id):
            raise NotAllowed(f"only the author or an admin may {action} this question")
        if self.status is not QuestionStatus.OPEN:
            raise InvalidState(f"cannot {action} a question that is {self.status}; only OPEN ones")

    def edit(
        self,
        actor: Actor,
        *,
        title: str | None = None,
        content: str | None = None,
        bounty: int | None = None,
    ) -> None:
        self._require_editable(actor, "edit")
        new_title = self.title if title is None else checked_text(title, "title", TITLE_MAX_LENGTH)
        new_content = (
            self.content
            if content is None
            else checked_text(content, "content", CONTENT_MAX_LENGTH)
        )
        new_bounty = self.bounty if bounty is None else checked_bounty(bounty)
        if (new_title, new_content, new_bounty) == (self.title, self.content, self.bounty):
            return
        self.title, self.content, self.bounty = new_title, new_content, new_bounty
        self._question_updated()

    def delete(self, actor: Actor) -> None:
        """Delete the question with its answers and comments (each removal is an event of its own)."""
        self._require_editable(actor, "delete")
        for answer in self.answers:
            self.events.append(
                AnswerDeleted(
                    question_id=self.id,
                    answer_id=answer.id,
                    author_id=answer.author_id,
                    version=self._next_version(),
                )
            )
        for comment in self.comments:
            self.events.append(
                QnaCommentDeleted(
                    question_id=self.id,
                    comment_id=comment.id,
                    author_id=comment.author_id,
                    version=self._next_version(),
                )
            )
        self.answers, self.comments = [], []
        self.deleted = True
        self.events.append(
            QuestionDeleted(
                question_id=self.id, author_id=self.author_id, version=self._next_version()
            )
        )

    # ------------------------------------------------------------------ answers

    def post_answer(self, actor: Actor, content: str) -> Answer:
        if actor.withdrawn:
            raise NotAllowed("a withdrawn member cannot answer")
        if self.status is not QuestionStatus.OPEN:
            raise InvalidState(f"only an OPEN question takes answers; it is {self.status}")
        now = utcnow()
        answer = Answer(
            id=uuid.uuid4(),
            question_id=self.id,
            author_id=actor.id,
            content=checked_text(content, "content", CONTENT_MAX_LENGTH),
            accepted=False,
            created_at=now,
            updated_at=now,
        )
        self.answers.append(answer)
        self.events.append(
            AnswerPosted(
                question_id=self.id,
                answer_id=answer.id,
                author_id=answer.author_id,
                version=self._next_version(),
            )
        )
        return answer

    def _require_answer_modifiable(self, actor: Actor, answer: Answer, action: str) -> None:
        if not _may_modify(actor, answer.author_id):
            raise NotAllowed(f"only the answer's author or an admin may {action} it")
        if answer.accepted:
            raise InvalidState(f"cannot {action} an accepted answer")
        if self.status is QuestionStatus.ACCEPTING:
            raise InvalidState(f"cannot {action} an answer while the question is ACCEPTING")

    def edit_answer(self, actor: Actor, answer_id: uuid.UUID, content: str) -> Answer:
        answer = self._answer(answer_id)
        self._require_answer_modifiable(actor, answer, "edit")
        answer.content = checked_text(content, "content", CONTENT_MAX_LENGTH)
        self._next_version()
        answer.updated_at = self.updated_at
        return answer

    def delete_answer(self, actor: Actor, answer_id: uuid.UUID) -> None:
        answer = self._answer(answer_id)
        self._require_answer_modifiable(actor, answer, "delete")
        self.answers.remove(answer)
        self.events.append(
            AnswerDeleted(
                question_id=self.id,
                answer_id=answer.id,
                author_id=answer.author_id,
                version=self._next_version(),
            )
        )

    # ------------------------------------------------------------------ comments

    def add_comment(self, actor: Actor, content: str) -> Comment:
        if actor.withdrawn:
            raise NotAllowed("a withdrawn member cannot comment")
        now = utcnow()
        comment = Comment(
            id=uuid.uuid4(),
            question_id=self.id,
            author_id=actor.id,
            content=checked_text(content, "content", COMMENT_MAX_LENGTH),
            created_at=now,
            updated_at=now,
        )
        self.comments.append(comment)
        self.events.append(
            QnaCommentAdded(
                question_id=self.id,
                comment_id=comment.id,
                author_id=comment.author_id,
                version=self._next_version(),
            )
        )
        return comment

    def edit_comment(self, actor: Actor, comment_id: uuid.UUID, content: str) -> Comment:
        comment = self._comment(comment_id)
        if not _may_modify(actor, comment.author_id):
            raise NotAllowed("only the comment's author or an admin may edit it")
        comment.content = checked_text(content, "content", COMMENT_MAX_LENGTH)
        self._next_version()
        comment.updated_at = self.updated_at
        return comment

    def delete_comment(self, actor: Actor, comment_id: uuid.UUID) -> None:
        comment = self._comment(comment_id)
        if not _may_modify(actor, comment.author_id):
            raise NotAllowed("only the comment's author or an admin may delete it")
        self.comments.remove(comment)
        self.events.append(
            QnaCommentDeleted(
                question_id=self.id,
                comment_id=comment.id,
                author_id=comment.author_id,
                version=self._next_version(),
            )
        )

    # ------------------------------------------------------------------ acceptance (saga)

    def check_acceptance(self, asker_id: uuid.UUID, answer_id: uuid.UUID) -> Answer:
        """Refuse a plainly invalid acceptance; the same rules guard the saga's reservation."""
        if self.author_id is None or asker_id != self.author_id:
            raise NotAllowed("only the asker may accept an answer")
        if self.status is not QuestionStatus.OPEN:
            raise InvalidTransition(
                f"only an OPEN question can accept an answer; it is {self.status}"
            )
        answer = self.find_answer(answer_id)
        if answer is None:
            raise InvalidState("the answer is not on this question")
        if answer.author_id == asker_id:
            raise InvalidState("the asker cannot accept their own answer")
        if answer.author_id is None:
            raise InvalidState("the answer's author has withdrawn")
        return answer

    def reserve_acceptance(self, asker_id: uuid.UUID, answer_id: uuid.UUID, saga_id: str) -> Answer:
        """OPEN -> ACCEPTING: lock the question for one saga and one answer."""
        answer = self.check_acceptance(asker_id, answer_id)
        self._transition("reserve_acceptance")
        self.acceptance_saga_id = saga_id
        self.pending_answer_id = answer.id
        self._question_updated()
        return answer

    def is_reserved_by(self, saga_id: str) -> bool:
        return self.status is QuestionStatus.ACCEPTING and self.acceptance_saga_id == saga_id

    def cancel_acceptance(self) -> None:
        """ACCEPTING -> OPEN: release the lock (the saga's compensation)."""
        self._transition("cancel_acceptance")
        self.acceptance_saga_id = None
        self.pending_answer_id = None
        self._question_updated()

    def confirm_acceptance(self, answer_id: uuid.UUID) -> Answer:
        """ACCEPTING -> RESOLVED: the pending answer becomes the accepted one."""
        if self.status is QuestionStatus.ACCEPTING and answer_id != self.pending_answer_id:
            raise InvalidState("the question is accepting a different answer")
        self._transition("confirm_acceptance")
        answer = self._answer(answer_id)
        answer.accepted = True
        self.accepted_answer_id = answer.id
        self.pending_answer_id = None
        self.events.append(
            AnswerAccepted(
                question_id=self.id,
                answer_id=answer.id,
                answer_author_id=answer.author_id,
                asker_id=self.author_id,
                bounty=self.bounty,
                version=self._next_version(),
            )
        )
        self._question_updated()
        return answer

    # ------------------------------------------------------------------ member withdrawal (saga)

    def close(self) -> None:
        """OPEN -> CLOSED: the asker is withdrawing."""
        self._transition("close")
        self.events.append(
            QuestionClosed(
                question_id=self.id, author_id=self.author_id, version=self._next_version()
            )
        )

    def reopen(self) -> None:
        """CLOSED -> OPEN: the withdrawal was compensated."""
        self._transition("reopen")
        self.events.append(
            QuestionReopened(
                question_id=self.id, author_id=self.author_id, version=self._next_version()
            )
        )

    def anonymize_author(self, member_id: uuid.UUID) -> AuthorTraces:
        """Detach ``member_id`` from the question, its answers and comments; return what changed."""
        answers = [a for a in self.answers if a.author_id == member_id]
        comments = [c for c in self.comments if c.author_id == member_id]
        for answer in answers:
            answer.author_id = None
        for comment in comments:
            comment.author_id = None
        traces = AuthorTraces(
            question=self.author_id == member_id,
            answer_ids=tuple(a.id for a in answers),
            comment_ids=tuple(c.id for c in comments),
        )
        if traces.question:
            self.author_id = None
            self._question_updated()
        elif traces:
            self._next_version()
        return traces

    def restore_author(self, member_id: uuid.UUID, traces: AuthorTraces) -> None:
        """Undo ``anonymize_author`` for exactly the parts it changed."""
        restored = False
        for answer in self.answers:
            if answer.id in traces.answer_ids and answer.author_id is None:
                answer.author_id, restored = member_id, True
        for comment in self.comments:
            if comment.id in traces.comment_ids and comment.author_id is None:
                comment.author_id, restored = member_id, True
        if traces.question and self.author_id is None:
            self.author_id = member_id
            self._question_updated()
        elif restored:
            self._next_version()
