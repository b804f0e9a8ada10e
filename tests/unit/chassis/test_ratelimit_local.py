"""The in-memory fixed window that stands in for Redis's count during an outage."""

from __future__ import annotations

import asyncio

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
    assert decisions[-1].retry_after == 60
    clock.now += 30
    assert window.hit("k", 3, 60).retry_after == 30
    clock.now += 30
    assert window.count("k") == 0
    assert window.hit("k", 3, 60).count == 1


def test_keys_are_counted_apart_and_reset_clears_one() -> None:
    window = LocalWindow(clock=Clock())
    for _ in range(3):
        window.hit("a", 3, 60)
    window.hit("b", 3, 60)
    assert (window.count("a"), window.count("b")) == (3, 1)
    window.reset("a")
    assert window.count("a") == 0
    assert window.hit("a", 3, 60).allowed


def test_release_hands_back_one_event_and_never_goes_below_zero() -> None:
    window = LocalWindow(clock=Clock())
    window.hit("k", 2, 60)
    window.hit("k", 2, 60)
    window.release("k")
    assert window.count("k") == 1
    assert window.hit("k", 2, 60).allowed
    for _ in range(5):
        window.release("k")
    assert window.count("k") == 0
    window.release("never-counted")
    assert window.count("never-counted") == 0


async def test_concurrent_reservations_admit_exactly_the_limit() -> None:
    """A check-then-act race on a limit cannot happen in the fallback either: ``hit`` decides
    and counts in one step, so of 30 simultaneous callers exactly the limit pass."""
    window = LocalWindow(clock=Clock())

    async def attempt() -> bool:
        await asyncio.sleep(0)
        allowed = window.hit("k", 5, 60).allowed
        await asyncio.sleep(0.001)  # the slow work the limit protects
        return allowed

    results = await asyncio.gather(*(attempt() for _ in range(30)))
    assert results.count(True) == 5


def test_a_flood_of_keys_stays_bounded_and_drops_the_oldest_window_first() -> None:
    clock = Clock()
    window = LocalWindow(max_keys=3, clock=clock)
    for key in ("old", "mid", "new"):
        window.hit(key, 1, 60)
        clock.now += 1
    window.hit("newest", 1, 60)
    assert window.count("old") == 0  # evicted
    assert [window.count(k) for k in ("mid", "new", "newest")] == [1, 1, 1]
    assert len(window._windows) == 3
