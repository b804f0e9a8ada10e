"""Test support: the orders in which board and qna may receive two withdrawal sagas' events and commands.

``member.events`` (MemberWithdrawalStarted / Cancelled / MemberWithdrawn) and the participant's
saga command topic are two streams with no order between them; what the sagas do guarantee is
:data:`ORDER`. :func:`linear_extensions` lists every order that respects it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

#: Names: ``started-N``, ``step-N`` (AnonymizeAuthor / RetireAuthor), ``restore-N``,
#: ``cancelled-N`` of saga N (1 compensated, then 2), and ``withdrawn``. What holds: events of
#: one member keep their order (one partition); a saga's commands are sent one after another;
#: CancelWithdrawal (hence its event) follows the reply to RestoreAuthor; the second saga
#: starts only after the first one ended; MemberWithdrawn is published by the pivot, after
#: every step succeeded.
ORDER = frozenset(
    {
        ("started-1", "cancelled-1"),
        ("cancelled-1", "started-2"),
        ("started-2", "cancelled-2"),
        ("started-2", "withdrawn"),
        ("step-1", "restore-1"),
        ("restore-1", "cancelled-1"),
        ("restore-1", "step-2"),
        ("step-2", "restore-2"),
        ("restore-2", "cancelled-2"),
        ("step-2", "withdrawn"),
    }
)

FIRST_COMPENSATED = ["started-1", "step-1", "restore-1", "cancelled-1"]
#: (messages, the refusal a write gets at the end: None when it is allowed)
CASES = {
    "second-running": ([*FIRST_COMPENSATED, "started-2", "step-2"], "the member is withdrawing"),
    "both-compensated": (
        [*FIRST_COMPENSATED, "started-2", "step-2", "restore-2", "cancelled-2"],
        None,
    ),
    "second-completed": (
        [*FIRST_COMPENSATED, "started-2", "step-2", "withdrawn"],
        "the member has withdrawn",
    ),
}


def linear_extensions(
    items: Sequence[str], before: frozenset[tuple[str, str]] = ORDER
) -> Iterator[tuple[str, ...]]:
    """Every order of ``items`` in which each pair ``(a, b)`` of ``before`` (with both in
    ``items``) has a before b."""
    if not items:
        yield ()
        return
    for head in items:
        if any(b == head and a in items for a, b in before):
            continue
        rest = [i for i in items if i != head]
        for tail in linear_extensions(rest, before):
            yield (head, *tail)


def must_refuse(applied: Sequence[str]) -> bool:
    """True when a write must be refused after ``applied``: the running second saga has reached
    this service (its event or its step) and its step has not been compensated here. (Once
    RestoreAuthor ran, the saga is undoing itself and the refusal may lift before its cancelled
    event arrives.)"""
    return bool({"started-2", "step-2"} & set(applied)) and "restore-2" not in applied
