"""The question state machine: every transition allowed and every one refused, with its events."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

import pytest

from qna.domain import events
from qna.domain.errors import InvalidState, InvalidTransition, NotAllowed
from qna.domain.model import TRANSITIONS, Actor, Question, QuestionStatus

ASKER = Actor(uuid.uuid4())
ANSWERER = Actor(uuid.uuid4())
SAGA = "saga-1"

OPEN, ACCEPTING, RESOLVED, CLOSED = (
    QuestionStatus.OPEN,
    QuestionStatus.ACCEPTING,
    QuestionStatus.RESOLVED,
    QuestionStatus.CLOSED,
)


def question_in(status: QuestionStatus) -> tuple[Question, uuid.UUID]:
    """A question with one answer by someone else, driven into ``status`` by the real operations."""
    question = Question.ask(ASKER, "How do sagas compensate?", "Details.", bounty=10)
    answer = question.post_answer(ANSWERER, "In reverse order.")
    if status is ACCEPTING:
        question.reserve_acceptance(ASKER.id, answer.id, SAGA)
    elif status is RESOLVED:
        question.reserve_acceptance(ASKER.id, answer.id, SAGA)
        question.confirm_acceptance(answer.id)
    elif status is CLOSED:
        question.close()
    question.pull_events()
    return question, answer.id


def operation(name: str) -> Callable[[Question, uuid.UUID], object]:
    return {
        "reserve_acceptance": lambda q, a: q.reserve_acceptance(ASKER.id, a, SAGA),
        "cancel_acceptance": lambda q, a: q.cancel_acceptance(),
        "confirm_acceptance": lambda q, a: q.confirm_acceptance(a),
        "close": lambda q, a: q.close(),
        "reopen": lambda q, a: q.reopen(),
    }[name]


def test_the_machine_has_exactly_the_designed_transitions() -> None:
    assert set(TRANSITIONS.values()) == {
        (OPEN, ACCEPTING),
        (ACCEPTING, OPEN),
        (ACCEPTING, RESOLVED),
        (OPEN, CLOSED),
        (CLOSED, OPEN),
    }


@pytest.mark.parametrize(
    ("name", "status"), list(itertools.product(TRANSITIONS, list(QuestionStatus)))
)
def test_each_operation_moves_only_from_its_source_status(
    name: str, status: QuestionStatus
) -> None:
    question, answer_id = question_in(status)
    version = question.version
    source, target = TRANSITIONS[name]
    if status is source:
        operation(name)(question, answer_id)
        assert question.status is target
        assert question.version > version
        recorded = question.pull_events()
        assert recorded, "every status change is published"
        assert [e.version for e in recorded] == list(range(version + 1, question.version + 1))
    else:
        with pytest.raises(InvalidTransition):
            operation(name)(question, answer_id)
        assert question.status is status
        assert question.version == version
        assert question.pull_events() == []


def test_every_status_pair_outside_the_machine_is_unreachable() -> None:
    reachable = set()
    for name, status in itertools.product(TRANSITIONS, list(QuestionStatus)):
        question, answer_id = question_in(status)
        try:
            operation(name)(question, answer_id)
        except InvalidState:
            continue
        reachable.add((status, question.status))
    assert reachable == set(TRANSITIONS.values())


def test_asking_records_question_asked_at_version_one() -> None:
    question = Question.ask(ASKER, "t", "c", bounty=5)
    [asked] = question.pull_events()
    assert isinstance(asked, events.QuestionAsked)
    assert (asked.version, asked.status, asked.bounty, asked.author_id) == (1, "OPEN", 5, ASKER.id)


def test_reserve_records_the_pending_answer_and_publishes_the_status() -> None:
    question, answer_id = question_in(OPEN)
    question.reserve_acceptance(ASKER.id, answer_id, SAGA)
    assert question.pending_answer_id == answer_id
    assert question.is_reserved_by(SAGA)
    assert not question.is_reserved_by("another-saga")
    [updated] = question.pull_events()
    assert isinstance(updated, events.QuestionUpdated)
    assert updated.status == "ACCEPTING"


def test_cancel_releases_the_lock() -> None:
    question, _ = question_in(ACCEPTING)
    question.cancel_acceptance()
    assert question.pending_answer_id is None
    assert not question.is_reserved_by(SAGA)
    [updated] = question.pull_events()
    assert isinstance(updated, events.QuestionUpdated)
    assert updated.status == "OPEN"


def test_confirm_accepts_the_pending_answer() -> None:
    question, answer_id = question_in(ACCEPTING)
    question.confirm_acceptance(answer_id)
    answer = question.find_answer(answer_id)
    assert answer is not None
    assert answer.accepted
    assert question.accepted_answer_id == answer_id
    accepted, updated = question.pull_events()
    assert isinstance(accepted, events.AnswerAccepted)
    assert (accepted.answer_author_id, accepted.asker_id, accepted.bounty) == (
        ANSWERER.id,
        ASKER.id,
        10,
    )
    assert isinstance(updated, events.QuestionUpdated)
    assert updated.status == "RESOLVED"
    assert updated.version == accepted.version + 1


def test_confirm_refuses_another_answer_than_the_pending_one() -> None:
    question, _ = question_in(ACCEPTING)
    other = uuid.uuid4()
    with pytest.raises(InvalidState):
        question.confirm_acceptance(other)
    assert question.status is ACCEPTING


def test_close_and_reopen_publish_their_events() -> None:
    question, _ = question_in(OPEN)
    question.close()
    question.reopen()
    closed, reopened = question.pull_events()
    assert isinstance(closed, events.QuestionClosed)
    assert isinstance(reopened, events.QuestionReopened)
    assert reopened.version == closed.version + 1


class TestAcceptanceRules:
    def test_only_the_asker_may_accept(self) -> None:
        question, answer_id = question_in(OPEN)
        with pytest.raises(NotAllowed):
            question.reserve_acceptance(ANSWERER.id, answer_id, SAGA)
        assert question.status is OPEN

    def test_the_answer_must_be_on_this_question(self) -> None:
        question, _ = question_in(OPEN)
        with pytest.raises(InvalidState, match="not on this question"):
            question.reserve_acceptance(ASKER.id, uuid.uuid4(), SAGA)

    def test_the_asker_cannot_accept_their_own_answer(self) -> None:
        question, _ = question_in(OPEN)
        own = question.post_answer(ASKER, "answering myself")
        with pytest.raises(InvalidState, match="own answer"):
            question.reserve_acceptance(ASKER.id, own.id, SAGA)

    def test_a_second_acceptance_is_refused_while_accepting(self) -> None:
        question, answer_id = question_in(ACCEPTING)
        with pytest.raises(InvalidState):
            question.check_acceptance(ASKER.id, answer_id)

    def test_an_anonymized_answer_cannot_be_accepted(self) -> None:
        question, answer_id = question_in(OPEN)
        question.anonymize_author(ANSWERER.id)
        with pytest.raises(InvalidState, match="withdrawn"):
            question.check_acceptance(ASKER.id, answer_id)
