"""The circuit breaker's states, driven by a hand-held clock."""

from __future__ import annotations

from gateway.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(b: CircuitBreaker) -> BreakerState:
    return b.state


def breaker(clock: Clock, threshold: int = 3, reset: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker("board", failure_threshold=threshold, reset_seconds=reset, clock=clock)


def test_consecutive_failures_open_the_circuit() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert state(b) is BreakerState.CLOSED
    b.record_failure()
    assert state(b) is BreakerState.OPEN
    assert not b.allow()
    assert b.retry_after() == 10.0


def test_a_success_resets_the_count() -> None:
    b = breaker(Clock())
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert state(b) is BreakerState.CLOSED


def test_after_the_reset_timeout_one_trial_is_let_through() -> None:
    clock = Clock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 9.9
    assert not b.allow()
    clock.now += 0.1
    assert state(b) is BreakerState.HALF_OPEN
    assert b.allow()  # the trial
    assert not b.allow()  # nobody else while it is in flight


def test_a_successful_trial_closes_the_circuit() -> None:
    clock = Clock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 10
    assert b.allow()
    b.record_success()
    assert state(b) is BreakerState.CLOSED
    assert b.allow()
    assert b.allow()


def test_a_failed_trial_opens_the_circuit_for_another_period() -> None:
    clock = Clock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 10
    assert b.allow()
    b.record_failure()
    assert state(b) is BreakerState.OPEN
    clock.now += 9
    assert not b.allow()
    clock.now += 1
    assert b.allow()


def test_a_trial_that_never_reports_back_is_replaced() -> None:
    clock = Clock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 10
    assert b.allow()  # its caller vanishes without an outcome
    clock.now += 9
    assert not b.allow()
    clock.now += 1
    assert b.allow()


def test_failures_while_open_do_not_extend_it() -> None:
    clock = Clock()
    b = breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 5
    b.record_failure()  # a call started before the circuit opened, failing late
    clock.now += 5
    assert state(b) is BreakerState.HALF_OPEN
