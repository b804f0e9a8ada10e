"""Pacing: a Locust user's wait time that holds its *requests* (not its tasks) at a set rate.

Locust's ``constant_throughput`` paces task runs; a persona's task sends one to a dozen
requests (a page view, a saga and its polling), so the request rate would depend on the mix.
``Pacer`` keeps a schedule instead: each request books ``1 / rate`` seconds, and the wait
after a task is what remains of the booking. A user that fell behind (a slow stack) does not
burst to catch up: the schedule restarts from now, so the rate is a ceiling, never a debt.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Spaces one user's requests ``1 / rate`` seconds apart on average (``rate`` in requests
    per second; ``clock`` returns seconds, monotonic)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError(f"the rate must be positive, not {rate}")
        self.interval = 1.0 / rate
        self.clock = clock
        self.due = clock()

    def spend(self, requests: int = 1) -> None:
        """Book ``requests`` requests just sent (or about to be)."""
        now = self.clock()
        # Behind schedule: start again from now rather than owe the stack a burst.
        self.due = max(self.due, now) + requests * self.interval

    def wait(self) -> float:
        """Seconds to wait before the next task: what remains of the booked time, ≥ 0."""
        return max(0.0, self.due - self.clock())
