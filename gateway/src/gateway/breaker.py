"""Circuit breaker: one per upstream, so a dead service is answered with a quick 503 instead of a wait.

CLOSED: calls flow; ``failure_threshold`` consecutive failures open the circuit.
OPEN: calls are refused at once until ``reset_seconds`` have passed.
HALF_OPEN: one trial call is let through; its success closes the circuit, its failure
opens it again for another ``reset_seconds``.

What counts as a failure (docs/CONVENTIONS.md "Fairness": one client's requests never change another
client's results) is decided by the caller, ``Upstreams.call`` in ``proxy.py``:

- a **failure** says the upstream is not serving: the connection could not be opened or broke,
  the route's deadline passed, or the upstream (or what stands in front of it) answered 502,
  503 or 504;
- every other answer is a **success**: a 4xx is the client's error, and a 500 (or any other
  5xx) is an error that one request provoked while the upstream is up and answering. Counting
  those would let one client open the circuit, and so take the upstream away from everyone,
  by repeating a request that fails. A 500 also closes a half-open circuit: the trial only
  asks whether the upstream answers. Treating it as neutral instead would protect nothing,
  since any client can already reset the count with a cheap 404. A sustained rate of 500s is
  a bug to fix, not an outage to route around; it shows in
  ``gateway_upstream_errors_total{kind="status_5xx"}`` per upstream and route.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

from chassis.logging import get_logger

log = get_logger(__name__)


class BreakerState(IntEnum):
    """The values are those of the ``gateway_breaker_state`` gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._open = False
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_after(self) -> float:
        """Seconds until the circuit lets a trial call through."""
        if not self._open:
            return 0.0
        return max(0.0, self._opened_at + self.reset_seconds - self._clock())

    def allow(self) -> bool:
        """May a call go upstream now? In HALF_OPEN only one trial is in flight at a time; a
        trial whose outcome never comes back (its caller vanished) is replaced after
        ``reset_seconds``."""
        if not self._open:
            return True
        now = self._clock()
        if now - self._opened_at < self.reset_seconds:
            return False
        if self._trial_started_at is not None and now - self._trial_started_at < self.reset_seconds:
            return False
        self._trial_started_at = now
        return True

    def record_success(self) -> None:
        if self._open:
            log.info("breaker.closed", upstream=self.name)
        self._open = False
        self._failures = 0
        self._trial_started_at = None

    def record_failure(self) -> None:
        if self._open:
            if self._trial_started_at is not None:
                # The half-open trial failed: stay open for another full reset period.
                self._opened_at = self._clock()
                self._trial_started_at = None
                log.warning("breaker.reopened", upstream=self.name)
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open = True
            self._opened_at = self._clock()
            self._trial_started_at = None
            log.warning("breaker.opened", upstream=self.name, failures=self._failures)
