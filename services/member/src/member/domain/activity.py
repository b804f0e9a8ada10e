"""CQRS read model rules: how each integration event changes a member's activity counters."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from member.domain.model import SIGNUP_POINTS

COUNTERS = ("posts", "comments", "questions", "answers", "accepted_answers", "points")

#: event type -> (counter, step, field naming the member whose counter changes)
_COUNTING_RULES: dict[str, tuple[str, int, str]] = {
    "PostCreated": ("posts", 1, "author_id"),
    "PostDeleted": ("posts", -1, "author_id"),
    "CommentAdded": ("comments", 1, "author_id"),
    "CommentDeleted": ("comments", -1, "author_id"),
    "QuestionAsked": ("questions", 1, "author_id"),
    "QuestionDeleted": ("questions", -1, "author_id"),
    "AnswerPosted": ("answers", 1, "author_id"),
    "AnswerDeleted": ("answers", -1, "author_id"),
    "AnswerAccepted": ("accepted_answers", 1, "answer_author_id"),
}

RELEVANT_EVENTS = frozenset(
    {*_COUNTING_RULES, "MemberRegistered", "PointsTransferred", "PointsRefunded"}
)


class MalformedEvent(ValueError):
    """An event of a known type whose body cannot be read."""


@dataclass(frozen=True)
class Delta:
    member_id: uuid.UUID
    counter: str
    amount: int


def _member_id(data: Mapping[str, Any], name: str) -> uuid.UUID | None:
    raw = data.get(name)
    if raw is None:  # the author was anonymized by a withdrawal: nobody to count for
        return None
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise MalformedEvent(f"{name} is not a UUID: {raw!r}") from exc


def _amount(data: Mapping[str, Any]) -> int:
    raw = data.get("amount")
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise MalformedEvent(f"amount is not an integer: {raw!r}")
    return raw


def deltas_for(event_type: str, data: Mapping[str, Any]) -> list[Delta]:
    """The counter changes one event causes (empty for events the read model ignores)."""
    if event_type in _COUNTING_RULES:
        counter, step, field = _COUNTING_RULES[event_type]
        member = _member_id(data, field)
        return [] if member is None else [Delta(member, counter, step)]
    if event_type == "MemberRegistered":
        member = _member_id(data, "member_id")
        return [] if member is None else [Delta(member, "points", SIGNUP_POINTS)]
    if event_type in ("PointsTransferred", "PointsRefunded"):
        payer = _member_id(data, "from_member_id")
        payee = _member_id(data, "to_member_id")
        amount = _amount(data)
        if event_type == "PointsRefunded":
            amount = -amount
        out: list[Delta] = []
        if payer is not None:
            out.append(Delta(payer, "points", -amount))
        if payee is not None:
            out.append(Delta(payee, "points", amount))
        return out
    return []


def fold(deltas: list[Delta], into: dict[uuid.UUID, dict[str, int]]) -> None:
    """Add deltas to in-memory counters (used by the rebuild)."""
    for d in deltas:
        row = into.setdefault(d.member_id, dict.fromkeys(COUNTERS, 0))
        row[d.counter] += d.amount
