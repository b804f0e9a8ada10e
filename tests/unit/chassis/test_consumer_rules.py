"""Consumer failure rule, one message at a time: the try after a healthy probe, the DLQ publish backoff, the dead-letter hook, a revoked partition.

``ConsumerRunner._process`` decides what happens to one record; these tests drive it with a
stand-in for the partition controls it uses (assignment, pause, seek) and a stand-in producer
whose DLQ publish can fail. Real Kafka runs in tests/integration/chassis/test_consumer*.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from chassis.messaging.consumer import ConsumerRunner
from chassis.messaging.envelope import Envelope, to_kafka
from chassis.messaging.failures import PermanentFailure
from chassis.messaging.topics import dlq

TOPIC = "demo.events"
TP = TopicPartition(TOPIC, 0)


class Partitions:
    """What the runner asks of its Kafka consumer while it holds or releases a partition."""

    def __init__(self) -> None:
        self.assigned = {TP}
        self.paused_: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        for tp in tps:
            if tp not in self.assigned:
                raise AssertionError(f"pause of {tp}, not assigned (aiokafka: IllegalStateError)")
            self.paused_.add(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.assigned:
            raise AssertionError(f"seek of {tp}, not assigned (aiokafka: IllegalStateError)")
        self.seeks.append((tp, offset))


class Producer:
    """The runner's producer port: DLQ publishes fail while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list[str] = []
        self.tries = 0

    async def send_and_wait(self, topic: str, **_: Any) -> None:
        self.tries += 1
        if self.down:
            raise ConnectionRefusedError(111, "Connect call failed")
        self.sent.append(topic)


def record(offset: int = 7) -> ConsumerRecord[bytes, bytes]:
    env = Envelope.new("Demo", "demo", {"saga_id": "s-1"}, key="k")
    key, value, headers = to_kafka(env)
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, key, value, None, 0, len(value), headers)


def runner(
    handler: Callable[[Envelope], Awaitable[None]],
    producer: Producer,
    *,
    probe_ok: bool = True,
    on_dead_letter: Callable[[Envelope, BaseException], Awaitable[None]] | None = None,
) -> ConsumerRunner:
    async def probe() -> None:
        if not probe_ok:
            raise ConnectionRefusedError(111, "database down")

    return ConsumerRunner(
        kafka="127.0.0.1:1",
        topics=[TOPIC],
        group_id="demo",
        handler=handler,
        producer=lambda: producer,
        service="demo",
        max_attempts=3,
        retry_backoff=0.1,
        retry_backoff_max=10.0,
        probe=probe,
        on_dead_letter=on_dead_letter,
    )


async def until_settled(r: ConsumerRunner, parts: Partitions, rec: Any, limit: int = 50) -> int:
    """Process ``rec`` again and again, as the poll loop would after each backoff; returns the
    number of passes until it was handled or dead-lettered."""
    for n in range(1, limit + 1):
        if await r._process(parts, TP, rec):
            return n
    raise AssertionError(f"still waiting after {limit} passes")


async def test_an_unclassified_failure_gets_one_more_try_after_a_healthy_probe() -> None:
    """A failure from an outage that ended before the probe must not condemn the message."""
    calls = 0

    async def handler(_: Envelope) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:  # three failures, then the outage behind them is over
            raise RuntimeError("failed during an outage the probe no longer sees")

    producer = Producer()
    r = runner(handler, producer)
    assert await until_settled(r, Partitions(), record()) == 4
    assert calls == 4
    assert producer.sent == []  # handled, never dead-lettered


async def test_an_unclassified_failure_that_repeats_with_healthy_infrastructure_is_dead_lettered() -> (
    None
):
    calls = 0

    async def handler(_: Envelope) -> None:
        nonlocal calls
        calls += 1
        raise KeyError("widget_id")

    producer = Producer()
    r = runner(handler, producer)
    await until_settled(r, Partitions(), record())
    assert calls == 4  # max_attempts, a healthy probe, one more try, a healthy probe again
    assert producer.sent == [dlq(TOPIC)]


async def test_a_failed_dlq_publish_backs_off_on_the_capped_schedule() -> None:
    async def handler(_: Envelope) -> None:
        raise PermanentFailure("never")

    producer = Producer()
    producer.down = True
    r = runner(handler, producer)
    parts = Partitions()
    rec = record()
    delays = []
    for _ in range(8):
        assert not await r._process(parts, TP, rec)
        w = r._waiting[TP]
        delays.append(r.backoff.base(w.attempts))
        assert w.transient  # readiness reports it
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0]
    producer.down = False
    assert await r._process(parts, TP, rec)
    assert producer.sent == [dlq(TOPIC)]
    assert TP not in r._waiting


async def test_the_dead_letter_hook_runs_after_the_dlq_ack_and_is_retried_alone() -> None:
    async def handler(_: Envelope) -> None:
        raise PermanentFailure("bad payload")

    hooked: list[tuple[str, str]] = []
    hook_down = True

    async def hook(env: Envelope, error: BaseException) -> None:
        if hook_down:
            raise ConnectionRefusedError(111, "database down")
        hooked.append((env.data["saga_id"], str(error)))

    producer = Producer()
    r = runner(handler, producer, on_dead_letter=hook)
    parts = Partitions()
    rec = record()
    for _ in range(5):  # the hook's database is down: the partition waits, not readiness-silent
        assert not await r._process(parts, TP, rec)
        assert r._waiting[TP].transient
    hook_down = False
    assert await r._process(parts, TP, rec)
    assert producer.sent == [dlq(TOPIC)]  # one DLQ copy: the retries call the hook alone
    assert hooked == [("s-1", "bad payload")]


async def test_a_dead_letter_hook_that_keeps_failing_for_another_reason_is_given_up() -> None:
    async def handler(_: Envelope) -> None:
        raise PermanentFailure("bad payload")

    tries = 0

    async def hook(_: Envelope, __: BaseException) -> None:
        nonlocal tries
        tries += 1
        raise ValueError("a bug in the hook")

    producer = Producer()
    r = runner(handler, producer, on_dead_letter=hook)
    await until_settled(r, Partitions(), record())
    assert tries == 3
    assert producer.sent == [dlq(TOPIC)]


@pytest.mark.parametrize("failure", [ConnectionRefusedError(111, "refused"), KeyError("x")])
async def test_a_partition_revoked_during_the_handler_is_not_paused_or_sought(
    failure: Exception,
) -> None:
    parts = Partitions()

    async def handler(_: Envelope) -> None:
        parts.assigned.clear()  # a rebalance gave the partition to another member meanwhile
        raise failure

    r = runner(handler, Producer())
    assert not await r._process(parts, TP, record())
    assert parts.seeks == []
    assert TP not in r._waiting  # no waiting state for a partition this member lost


async def test_the_rest_of_a_batch_is_dropped_after_a_rebalance() -> None:
    """Records fetched before a rebalance are stale: revoked, the partition is another member's;
    revoked and given back, its position went back to the committed offset."""
    r = runner(lambda _: _never(), Producer())
    parts = Partitions()
    fetched_in = r._generation
    assert r._still_ours(parts, TP, fetched_in, record())
    r._generation += 1  # what the rebalance listener does when partitions are revoked
    assert not r._still_ours(parts, TP, fetched_in, record())  # given back: still stale
    parts.assigned.clear()
    assert not r._still_ours(parts, TP, r._generation, record())


async def _never() -> None:
    raise AssertionError("not called")
