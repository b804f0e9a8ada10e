"""The in-memory fixed window that stands in for Redis's count during an outage."""

from __future__ import annotations

from chassis.ratelimit import LocalWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refuses_past_the_limit_until_the_window_ends() -> None:
    clock = Clock()
    window = LocalWindow(clock=clock)
    decisions = [window.hit("k", 3, 60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert not window.peek("k", 3).allowed
    assert window.peek("k", 3).retry_after == 60
    clock.now += 30
    assert window.peek("k", 3).retry_after == 30
    clock.now += 30
    assert window.peek("k", 3).allowed
    assert window.hit("k", 3, 60).count == 1


def test_keys_are_counted_apart_and_reset_clears_one() -> None:
    window = LocalWindow(clock=Clock())
    for _ in range(3):
        window.hit("a", 3, 60)
    window.hit("b", 3, 60)
    assert not window.peek("a", 3).allowed
    assert window.peek("b", 3).allowed
    window.reset("a")
    assert window.peek("a", 3).allowed


def test_a_flood_of_keys_stays_bounded_and_drops_the_oldest_window_first() -> None:
    clock = Clock()
    window = LocalWindow(max_keys=3, clock=clock)
    for key in ("old", "mid", "new"):
        window.hit(key, 1, 60)
        clock.now += 1
    window.hit("newest", 1, 60)
    assert window.peek("old", 1).count == 0  # evicted
    assert [window.peek(k, 1).count for k in ("mid", "new", "newest")] == [1, 1, 1]
    assert len(window._windows) == 3
