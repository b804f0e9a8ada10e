"""The traffic mix: which persona sends what share of the requests, and how many Locust users carry it.

A *persona* is one kind of visitor (workload modelling's user profile). The shares are of
requests, not of users: readers send most of the traffic, as on any board, and a withdrawal
is rare. ``plan(rate)`` turns a total rate into users per persona and a rate per user, so a
run at ``rate`` requests per second sends about ``share × rate`` of them as each persona.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Share of all requests per persona (they add up to 1). Readers browse anonymously; the
#: others sign up and log in. The accepter starts answer-acceptance sagas, the withdrawer
#: member-withdrawal sagas (docs/sagas.md).
SHARES: dict[str, float] = {
    "reader": 0.70,
    "poster": 0.06,
    "commenter": 0.07,
    "asker": 0.04,
    "answerer": 0.07,
    "accepter": 0.05,
    "withdrawer": 0.01,
}

#: The most requests per second one Locust user is asked to send: a user waits for each
#: answer before the next request, so past a few per second one user would fall behind
#: whenever the stack slows down. A persona with more to send gets more users.
MAX_RATE_PER_USER = 4.0


@dataclass(frozen=True)
class Allocation:
    """One persona's part of a run: ``users`` Locust users, each sending ``rate_per_user``
    requests per second (so ``users × rate_per_user`` is the persona's rate)."""

    users: int
    rate_per_user: float

    @property
    def rate(self) -> float:
        """The persona's requests per second."""
        return self.users * self.rate_per_user


def plan(rate: float, shares: dict[str, float] | None = None) -> dict[str, Allocation]:
    """Users and per-user rate for each persona at ``rate`` requests per second in total.

    Every persona gets at least one user, so each kind of traffic shows however low the rate;
    ``ValueError`` for a rate that is not positive or shares that do not add up to 1.
    """
    shares = SHARES if shares is None else shares
    if not rate > 0:
        raise ValueError(f"the rate must be a positive number of requests per second, not {rate}")
    if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-9):
        raise ValueError(f"the shares add up to {sum(shares.values())}, not 1")
    allocations = {}
    for persona, share in shares.items():
        persona_rate = share * rate
        users = max(1, math.ceil(persona_rate / MAX_RATE_PER_USER))
        allocations[persona] = Allocation(users, persona_rate / users)
    return allocations


def total_users(allocations: dict[str, Allocation]) -> int:
    """How many Locust users the run starts."""
    return sum(a.users for a in allocations.values())
