"""The definition DSL: it refuses malformed sagas, and the two sagas match the conventions table."""

from __future__ import annotations

import pytest

from saga.definition import SagaDefinition, StepKind, fields
from saga.definitions import ANSWER_ACCEPTANCE, DEFINITIONS, MEMBER_WITHDRAWAL


def _table(definition: SagaDefinition) -> list[tuple[str, str, str, str, str | None]]:
    return [
        (
            s.kind.value,
            s.name,
            s.action.participant,
            s.action.command,
            s.compensation.command if s.compensation else None,
        )
        for s in definition.steps
    ]


def test_member_withdrawal_is_the_table_of_the_conventions() -> None:
    assert _table(MEMBER_WITHDRAWAL) == [
        ("compensatable", "start-withdrawal", "member", "StartWithdrawal", "CancelWithdrawal"),
        ("compensatable", "anonymize-author", "board", "AnonymizeAuthor", "RestoreAuthor"),
        ("compensatable", "retire-author", "qna", "RetireAuthor", "RestoreAuthor"),
        ("pivot", "complete-withdrawal", "member", "CompleteWithdrawal", None),
    ]
    assert MEMBER_WITHDRAWAL.exclusive_key == "member_id"
    assert MEMBER_WITHDRAWAL.once_per_key  # a withdrawn member cannot withdraw again


def test_answer_acceptance_is_the_table_of_the_conventions() -> None:
    assert _table(ANSWER_ACCEPTANCE) == [
        ("compensatable", "reserve-acceptance", "qna", "ReserveAcceptance", "CancelAcceptance"),
        ("pivot", "transfer-points", "member", "TransferPoints", None),
        ("retriable", "confirm-acceptance", "qna", "ConfirmAcceptance", None),
    ]
    assert ANSWER_ACCEPTANCE.exclusive_key == "question_id"
    assert not ANSWER_ACCEPTANCE.once_per_key


def test_once_per_key_needs_an_exclusive_key() -> None:
    with pytest.raises(ValueError, match="once_per_key needs an exclusive_key"):
        SagaDefinition("x", once_per_key=True)


def test_compensations_go_to_the_participant_of_their_step() -> None:
    for definition in DEFINITIONS.values():
        for step in definition.steps:
            if step.compensation:
                assert step.compensation.participant == step.action.participant


def test_the_commands_of_each_participant_are_known() -> None:
    assert MEMBER_WITHDRAWAL.commands_of("member") == {
        "StartWithdrawal",
        "CancelWithdrawal",
        "CompleteWithdrawal",
    }
    assert ANSWER_ACCEPTANCE.commands_of("qna") == {
        "ReserveAcceptance",
        "CancelAcceptance",
        "ConfirmAcceptance",
    }


def test_a_step_must_invoke_a_command() -> None:
    with pytest.raises(ValueError, match="invokes no command"):
        SagaDefinition("s").pivot_step("a").build()


def test_a_compensation_comes_after_the_invocation() -> None:
    with pytest.raises(ValueError, match="before with_compensation"):
        SagaDefinition("s").compensatable_step("a").with_compensation("Undo")


def test_a_step_name_is_unique() -> None:
    with pytest.raises(ValueError, match="twice"):
        SagaDefinition("s").pivot_step("a").invoke("p", "Do").retriable_step("a").invoke(
            "p", "Do"
        ).build()


def test_a_step_invokes_and_compensates_once() -> None:
    step = SagaDefinition("s").compensatable_step("a").invoke("p", "Do")
    with pytest.raises(ValueError, match="already invokes"):
        step.invoke("p", "Again")
    with pytest.raises(ValueError, match="already has a compensation"):
        step.with_compensation("Undo").with_compensation("Undo")


def test_fields_picks_keys_of_the_saga_data() -> None:
    assert fields("a", "b")({"a": 1, "b": 2, "c": 3}) == {"a": 1, "b": 2}
    with pytest.raises(KeyError):
        fields("missing")({})


def test_index_of_an_unknown_step_is_an_error() -> None:
    assert MEMBER_WITHDRAWAL.index_of("retire-author") == 2
    with pytest.raises(KeyError):
        MEMBER_WITHDRAWAL.index_of("nope")


# --- step kinds (Richardson, Microservices Patterns ch. 4) ---------------------------------


def test_the_step_kinds_are_in_the_definitions() -> None:
    assert [s.kind for s in ANSWER_ACCEPTANCE.steps] == [
        StepKind.COMPENSATABLE,
        StepKind.PIVOT,
        StepKind.RETRIABLE,
    ]
    assert [s.kind for s in MEMBER_WITHDRAWAL.steps] == [StepKind.COMPENSATABLE] * 3 + [
        StepKind.PIVOT
    ]
    assert [s.retried_on_timeout for s in ANSWER_ACCEPTANCE.steps] == [False, True, True]


def test_a_compensatable_step_needs_a_compensation() -> None:
    with pytest.raises(ValueError, match="compensatable step 'a' of s has no compensation"):
        SagaDefinition("s").compensatable_step("a").invoke("p", "Do").build()


@pytest.mark.parametrize("kind", ["pivot", "retriable"])
def test_a_pivot_or_retriable_step_has_no_compensation(kind: str) -> None:
    saga = SagaDefinition("s")
    step = (
        saga.pivot_step("a")
        if kind == "pivot"
        else saga.pivot_step("first").invoke("p", "Go").retriable_step("a")
    )
    with pytest.raises(ValueError, match=f"{kind} step 'a' of s cannot have a compensation"):
        step.invoke("p", "Do").with_compensation("Undo").build()


def test_at_most_one_pivot() -> None:
    with pytest.raises(ValueError, match="more than one pivot: a, b"):
        SagaDefinition("s").pivot_step("a").invoke("p", "A").pivot_step("b").invoke(
            "p", "B"
        ).build()


def test_compensatable_steps_come_before_the_pivot() -> None:
    with pytest.raises(ValueError, match="compensatable step 'b' comes after pivot step 'a'"):
        SagaDefinition("s").pivot_step("a").invoke("p", "A").compensatable_step("b").invoke(
            "p", "B"
        ).with_compensation("UndoB").build()


def test_retriable_steps_come_after_the_pivot() -> None:
    with pytest.raises(ValueError, match="pivot step 'b' comes after retriable step 'a'"):
        SagaDefinition("s").retriable_step("a").invoke("p", "A").pivot_step("b").invoke(
            "p", "B"
        ).build()
    with pytest.raises(ValueError, match="retriable step 'b' of s needs a pivot before it"):
        SagaDefinition("s").compensatable_step("a").invoke("p", "A").with_compensation(
            "UndoA"
        ).retriable_step("b").invoke("p", "B").build()


def test_a_saga_of_compensatable_steps_only_is_valid() -> None:
    saga = (
        SagaDefinition("s")
        .compensatable_step("a")
        .invoke("p", "A")
        .with_compensation("UndoA")
        .compensatable_step("b")
        .invoke("q", "B")
        .with_compensation("UndoB")
        .build()
    )
    assert [s.kind for s in saga.steps] == [StepKind.COMPENSATABLE] * 2
