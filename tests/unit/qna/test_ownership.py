"""Ownership and locking rules: who may change a question, an answer or a comment, and when."""

from __future__ import annotations

import uuid

import pytest

from qna.domain import events
from qna.domain.errors import InvalidState, InvalidValue, NotAllowed, NotFound
from qna.domain.model import Actor, AuthorTraces, Question, QuestionStatus

ASKER = Actor(uuid.uuid4())
ANSWERER = Actor(uuid.uuid4())
STRANGER = Actor(uuid.uuid4())
ADMIN = Actor(uuid.uuid4(), is_admin=True)
WITHDRAWN = Actor(uuid.uuid4(), withdrawn=True)


def open_question() -> Question:
    question = Question.ask(ASKER, "title", "content", bounty=0)
    question.pull_events()
    return question


class TestQuestion:
    @pytest.mark.parametrize("actor", [ASKER, ADMIN], ids=["author", "admin"])
    def test_author_or_admin_edits_and_deletes_while_open(self, actor: Actor) -> None:
        question = open_question()
        question.edit(actor, title="new title", bounty=50)
        assert (question.title, question.bounty) == ("new title", 50)
        [updated] = question.pull_events()
        assert isinstance(updated, events.QuestionUpdated)
        question.delete(actor)
        assert question.deleted

    @pytest.mark.parametrize("actor", [ANSWERER, STRANGER], ids=["answerer", "stranger"])
    def test_others_may_not_edit_or_delete(self, actor: Actor) -> None:
        question = open_question()
        with pytest.raises(NotAllowed):
            question.edit(actor, title="mine now")
        with pytest.raises(NotAllowed):
            question.delete(actor)
        assert question.title == "title"
        assert not question.deleted

    @pytest.mark.parametrize(
        "status", [QuestionStatus.ACCEPTING, QuestionStatus.RESOLVED, QuestionStatus.CLOSED]
    )
    def test_nobody_edits_or_deletes_unless_open(self, status: QuestionStatus) -> None:
        question = open_question()
        answer = question.post_answer(ANSWERER, "answer")
        if status is QuestionStatus.CLOSED:
            question.close()
        else:
            question.reserve_acceptance(ASKER.id, answer.id, "saga")
            if status is QuestionStatus.RESOLVED:
                question.confirm_acceptance(answer.id)
        for actor in (ASKER, ADMIN):
            with pytest.raises(InvalidState):
                question.edit(actor, title="changed")
            with pytest.raises(InvalidState):
                question.delete(actor)
        assert question.title == "title"

    def test_an_anonymized_question_belongs_to_admins_only(self) -> None:
        question = open_question()
        question.anonymize_author(ASKER.id)
        with pytest.raises(NotAllowed):
            question.edit(ASKER, title="still mine?")
        question.edit(ADMIN, title="moderated")
        assert question.title == "moderated"

    def test_an_edit_that_changes_nothing_records_nothing(self) -> None:
        question = open_question()
        version = question.version
        question.edit(ASKER, title="title")
        assert question.version == version
        assert question.pull_events() == []

    def test_deleting_publishes_the_removal_of_every_answer_and_comment(self) -> None:
        question = open_question()
        answer = question.post_answer(ANSWERER, "a")
        comment = question.add_comment(STRANGER, "c")
        question.pull_events()
        question.delete(ASKER)
        recorded = question.pull_events()
        assert [type(e) for e in recorded] == [
            events.AnswerDeleted,
            events.QnaCommentDeleted,
            events.QuestionDeleted,
        ]
        assert isinstance(recorded[0], events.AnswerDeleted)
        assert recorded[0].answer_id == answer.id
        assert isinstance(recorded[1], events.QnaCommentDeleted)
        assert recorded[1].comment_id == comment.id
        assert [e.version for e in recorded] == [4, 5, 6]

    @pytest.mark.parametrize(
        ("title", "content", "bounty"),
        [(" ", "c", 0), ("t" * 201, "c", 0), ("t", "", 0), ("t", "c", -1), ("t", "c", 1001)],
    )
    def test_invariants_hold_without_the_api(self, title: str, content: str, bounty: int) -> None:
        with pytest.raises(InvalidValue):
            Question.ask(ASKER, title, content, bounty)

    def test_a_withdrawn_member_cannot_ask(self) -> None:
        with pytest.raises(NotAllowed):
            Question.ask(WITHDRAWN, "t", "c")


class TestAnswer:
    def test_anyone_but_a_withdrawn_member_answers(self) -> None:
        question = open_question()
        for actor in (ASKER, ANSWERER, STRANGER, ADMIN):
            question.post_answer(actor, "an answer")
        with pytest.raises(NotAllowed):
            question.post_answer(WITHDRAWN, "an answer")
        assert len(question.answers) == 4

    @pytest.mark.parametrize(
        "status", [QuestionStatus.ACCEPTING, QuestionStatus.RESOLVED, QuestionStatus.CLOSED]
    )
    def test_only_open_questions_take_answers(self, status: QuestionStatus) -> None:
        question = open_question()
        answer = question.post_answer(ANSWERER, "first")
        if status is QuestionStatus.CLOSED:
            question.close()
        else:
            question.reserve_acceptance(ASKER.id, answer.id, "saga")
            if status is QuestionStatus.RESOLVED:
                question.confirm_acceptance(answer.id)
        with pytest.raises(InvalidState):
            question.post_answer(STRANGER, "late")

    @pytest.mark.parametrize("actor", [ANSWERER, ADMIN], ids=["author", "admin"])
    def test_author_or_admin_edits_and_deletes(self, actor: Actor) -> None:
        question = open_question()
        answer = question.post_answer(ANSWERER, "draft")
        question.edit_answer(actor, answer.id, "final")
        assert answer.content == "final"
        question.delete_answer(actor, answer.id)
        assert question.answers == []

    @pytest.mark.parametrize("actor", [ASKER, STRANGER], ids=["asker", "stranger"])
    def test_others_may_not_edit_or_delete(self, actor: Actor) -> None:
        question = open_question()
        answer = question.post_answer(ANSWERER, "draft")
        with pytest.raises(NotAllowed):
            question.edit_answer(actor, answer.id, "hijacked")
        with pytest.raises(NotAllowed):
            question.delete_answer(actor, answer.id)
        assert answer.content == "draft"

    def test_never_once_accepted(self) -> None:
        question = open_question()
        answer = question.post_answer(ANSWERER, "the one")
        question.reserve_acceptance(ASKER.id, answer.id, "saga")
        question.confirm_acceptance(answer.id)
        for actor in (ANSWERER, ADMIN):
            with pytest.raises(InvalidState, match="accepted"):
                question.edit_answer(actor, answer.id, "changed")
            with pytest.raises(InvalidState, match="accepted"):
                question.delete_answer(actor, answer.id)

    def test_not_while_the_question_is_accepting(self) -> None:
        question = open_question()
        pending = question.post_answer(ANSWERER, "pending")
        other = question.post_answer(STRANGER, "other")
        question.reserve_acceptance(ASKER.id, pending.id, "saga")
        with pytest.raises(InvalidState, match="ACCEPTING"):
            question.edit_answer(STRANGER, other.id, "changed")
        with pytest.raises(InvalidState, match="ACCEPTING"):
            question.delete_answer(ANSWERER, pending.id)
        assert len(question.answers) == 2

    def test_a_non_accepted_answer_can_still_change_after_resolution(self) -> None:
        question = open_question()
        chosen = question.post_answer(ANSWERER, "chosen")
        other = question.post_answer(STRANGER, "other")
        question.reserve_acceptance(ASKER.id, chosen.id, "saga")
        question.confirm_acceptance(chosen.id)
        question.edit_answer(STRANGER, other.id, "edited later")
        assert other.content == "edited later"

    def test_an_unknown_answer_is_not_found(self) -> None:
        question = open_question()
        with pytest.raises(NotFound):
            question.edit_answer(ADMIN, uuid.uuid4(), "x")


class TestComment:
    def test_anyone_comments_in_any_status_but_a_withdrawn_member(self) -> None:
        question = open_question()
        question.close()
        comment = question.add_comment(STRANGER, "still allowed")
        assert comment.author_id == STRANGER.id
        with pytest.raises(NotAllowed):
            question.add_comment(WITHDRAWN, "no")

    @pytest.mark.parametrize("actor", [STRANGER, ADMIN], ids=["author", "admin"])
    def test_author_or_admin_edits_and_deletes(self, actor: Actor) -> None:
        question = open_question()
        comment = question.add_comment(STRANGER, "hello")
        question.edit_comment(actor, comment.id, "hello again")
        assert comment.content == "hello again"
        question.delete_comment(actor, comment.id)
        assert question.comments == []

    @pytest.mark.parametrize("actor", [ASKER, ANSWERER], ids=["asker", "other"])
    def test_others_may_not_edit_or_delete(self, actor: Actor) -> None:
        question = open_question()
        comment = question.add_comment(STRANGER, "hello")
        with pytest.raises(NotAllowed):
            question.edit_comment(actor, comment.id, "changed")
        with pytest.raises(NotAllowed):
            question.delete_comment(actor, comment.id)
        assert comment.content == "hello"

    def test_comment_length_is_checked(self) -> None:
        question = open_question()
        with pytest.raises(InvalidValue):
            question.add_comment(STRANGER, "x" * 2001)


class TestAnonymization:
    def test_anonymize_and_restore_touch_exactly_the_members_parts(self) -> None:
        question = open_question()
        own_answer = question.post_answer(ASKER, "mine")
        other_answer = question.post_answer(ANSWERER, "theirs")
        own_comment = question.add_comment(ASKER, "my comment")
        question.pull_events()

        traces = question.anonymize_author(ASKER.id)

        assert traces == AuthorTraces(True, (own_answer.id,), (own_comment.id,))
        assert question.author_id is None
        assert own_answer.author_id is None
        assert own_comment.author_id is None
        assert other_answer.author_id == ANSWERER.id
        [updated] = question.pull_events()
        assert isinstance(updated, events.QuestionUpdated)
        assert updated.author_id is None

        question.restore_author(ASKER.id, traces)

        assert question.author_id == ASKER.id
        assert own_answer.author_id == ASKER.id
        assert own_comment.author_id == ASKER.id
        [restored] = question.pull_events()
        assert isinstance(restored, events.QuestionUpdated)
        assert restored.author_id == ASKER.id

    def test_anonymizing_someone_absent_changes_nothing(self) -> None:
        question = open_question()
        version = question.version
        assert not question.anonymize_author(STRANGER.id)
        assert question.version == version
