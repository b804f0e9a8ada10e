"""Saga definitions: one file per saga; this registry maps a saga type to its definition."""

from __future__ import annotations

from saga.definition import SagaDefinition
from saga.definitions.answer_acceptance import ANSWER_ACCEPTANCE
from saga.definitions.member_withdrawal import MEMBER_WITHDRAWAL

DEFINITIONS: dict[str, SagaDefinition] = {d.name: d for d in (MEMBER_WITHDRAWAL, ANSWER_ACCEPTANCE)}

__all__ = ["ANSWER_ACCEPTANCE", "DEFINITIONS", "MEMBER_WITHDRAWAL"]
