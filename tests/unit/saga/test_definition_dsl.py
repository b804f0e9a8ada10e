"""The definition DSL: it refuses malformed sagas, and the two sagas match the conventions table."""

from __future__ import annotations

import pytest

from saga.definition import SagaDefinition, fields
from saga.definitions import ANSWER_ACCEPTANCE, DEFINITIONS, MEMBER_WITHDRAWAL


def _table(definition: SagaDefinition) -> list[tuple[str, str, str, str | None]]:
    return [
        (
            s.name,
            s.action.participant,
            s.action.command,
            s.compensation.command if s.compensation else None,
        )
        for s in definition.steps
    ]


def test_member_withdrawal_is_the_table_of_the_conventions() -> None:
    assert _table(MEMBER_WITHDRAWAL) == [
        ("start-withdrawal", "member", "StartWithdrawal", "CancelWithdrawal"),
        ("anonymize-author", "board", "AnonymizeAuthor", "RestoreAuthor"),
        ("retire-author", "qna", "RetireAuthor", "RestoreAuthor"),
        ("complete-withdrawal", "member", "CompleteWithdrawal", None),
    ]
    assert MEMBER_WITHDRAWAL.exclusive_key == "member_id"


def test_answer_acceptance_is_the_table_of_the_conventions() -> None:
    assert _table(ANSWER_ACCEPTANCE) == [
        ("reserve-acceptance", "qna", "ReserveAcceptance", "CancelAcceptance"),
        ("transfer-points", "member", "TransferPoints", "RefundPoints"),
        ("confirm-acceptance", "qna", "ConfirmAcceptance", None),
    ]
    assert ANSWER_ACCEPTANCE.exclusive_key == "question_id"


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
        SagaDefinition("s").step("a").build()


def test_a_compensation_comes_after_the_invocation() -> None:
    with pytest.raises(ValueError, match="before with_compensation"):
        SagaDefinition("s").step("a").with_compensation("Undo")


def test_a_step_name_is_unique() -> None:
    with pytest.raises(ValueError, match="twice"):
        SagaDefinition("s").step("a").invoke("p", "Do").step("a").invoke("p", "Do").build()


def test_a_step_invokes_and_compensates_once() -> None:
    step = SagaDefinition("s").step("a").invoke("p", "Do")
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
