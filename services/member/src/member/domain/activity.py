"""CQRS read model rules: which counted item each integration event adds to, or removes from, a member's activity.

A counter is not a running sum of +1/-1 deltas: it is the total weight of the alive items of its
kind that belong to the member (a post id, a comment id, an accepted answer id, a points
movement). Every event states what it knows about an item: it exists (``present``) or it is
gone. A gone item stays gone whatever arrives later, so each counter depends on the set of
events seen, not on their order or how often they were delivered (docs/CONVENTIONS.md "Failures of
consumers").

Points have their system of record in this service (``members.points``); the read model
derives them from the events that move them: the sign-up grant (MemberRegistered), and one pair
of items per answer-acceptance saga (PointsTransferred: the payer's -amount and the payee's
+amount, keyed by the saga id, so a transfer counts once however often it is delivered;
PointsRefunded removes the pair).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from member.domain.model import SIGNUP_POINTS

COUNTERS = ("posts", "comments", "questions", "answers", "accepted_answers", "points")


class MalformedEvent(ValueError):
    """An event of a known type whose body cannot be read."""


@dataclass(frozen=True)
class Item:
    """One event's statement about one counted item: ``counter`` is a member_activity column,
    ``item_id`` unique within it, ``member_id`` the owner (None when the event does not name
    one, e.g. an anonymized author), ``weight`` what the item adds to the counter."""

    counter: str
    item_id: str
    member_id: uuid.UUID | None
    present: bool
    weight: int = 1


#: event type -> (counter, field naming the item, field naming its owner, present)
_ITEM_RULES: dict[str, tuple[str, str, str, bool]] = {
    "PostCreated": ("posts", "post_id", "author_id", True),
    "PostDeleted": ("posts", "post_id", "author_id", False),
    "CommentAdded": ("comments", "comment_id", "author_id", True),
    "CommentDeleted": ("comments", "comment_id", "author_id", False),
    "QuestionAsked": ("questions", "question_id", "author_id", True),
    "QuestionDeleted": ("questions", "question_id", "author_id", False),
    "AnswerPosted": ("answers", "answer_id", "author_id", True),
    "AnswerDeleted": ("answers", "answer_id", "author_id", False),
    # Published once the acceptance saga confirmed it (after its pivot): never withdrawn.
    "AnswerAccepted": ("accepted_answers", "answer_id", "answer_author_id", True),
}

RELEVANT_EVENTS = frozenset(
    {*_ITEM_RULES, "MemberRegistered", "PointsTransferred", "PointsRefunded"}
)


def _member_id(data: Mapping[str, Any], name: str) -> uuid.UUID | None:
    raw = data.get(name)
    if raw is None:  # the author was anonymized by a withdrawal: nobody to count for
        return None
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise MalformedEvent(f"{name} is not a UUID: {raw!r}") from exc


def _required(data: Mapping[str, Any], name: str) -> str:
    raw = data.get(name)
    if not isinstance(raw, str) or not raw:
        raise MalformedEvent(f"{name} is missing: {raw!r}")
    return raw


def _amount(data: Mapping[str, Any]) -> int:
    raw = data.get("amount")
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise MalformedEvent(f"amount is not an integer: {raw!r}")
    return raw


def items_for(event_type: str, data: Mapping[str, Any]) -> list[Item]:
    """What one event says about counted items (empty for events the read model ignores).
    Raises ``MalformedEvent`` for a body it cannot read."""
    if event_type in _ITEM_RULES:
        counter, item_field, owner_field, present = _ITEM_RULES[event_type]
        item = _required(data, item_field)
        return [Item(counter, item, _member_id(data, owner_field), present)]
    if event_type == "MemberRegistered":
        member = _member_id(data, "member_id")
        if member is None:
            return []
        return [Item("points", f"signup:{member}", member, True, SIGNUP_POINTS)]
    if event_type in ("PointsTransferred", "PointsRefunded"):
        saga_id = _required(data, "saga_id")
        amount = _amount(data)
        present = event_type == "PointsTransferred"
        return [
            Item(
                "points", f"{saga_id}:payer", _member_id(data, "from_member_id"), present, -amount
            ),
            Item("points", f"{saga_id}:payee", _member_id(data, "to_member_id"), present, amount),
        ]
    return []
