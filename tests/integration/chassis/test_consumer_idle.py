"""Consumer idling on real Kafka: a quiet consumer long-polls and rarely wakes, yet a retry, a new record and a stop stay prompt."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from chassis.messaging import consumer as consumer_module
from chassis.messaging.consumer import (
    FETCH_WAIT_BUSY_MS,
    FETCH_WAIT_IDLE_MS,
    ConsumerRunner,
)
from chassis.messaging.envelope import Envelope, to_kafka
from chassis.messaging.topics import ensure_topics
from tests.support.infra import Infra, wait_for
from tests.support.kafka import runner_for, running

pytestmark = pytest.mark.integration

#: Seconds without records before the tests' consumers count as idle (the default is 5 s).
IDLE_AFTER = 0.5


@pytest.fixture(autouse=True)
def _quick_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "IDLE_AFTER_SECONDS", IDLE_AFTER)


async def send(producer: AIOKafkaProducer, topic: str, widget: str) -> None:
    key, value, headers = to_kafka(
        Envelope.new("WidgetTouched", "tests", {"widget_id": widget}, key=widget)
    )
    await producer.send_and_wait(topic, value=value, key=key, headers=headers)


async def idle(runner: ConsumerRunner) -> None:
    """Until the consumer's fetches wait the idle time (a poll after ``IDLE_AFTER`` sets it)."""
    assert runner.consumer is not None
    fetcher = runner.consumer._fetcher

    async def long_polling() -> bool:
        return bool(fetcher._fetch_max_wait_ms == FETCH_WAIT_IDLE_MS)

    await wait_for(long_polling, timeout=15, message="fetches wait the idle time")


class Requests:
    """Counts what a started consumer sends to the brokers, and its fetcher task's turns."""

    def __init__(self, runner: ConsumerRunner, monkeypatch: pytest.MonkeyPatch) -> None:
        assert runner.consumer is not None
        client = runner.consumer._client
        fetcher = runner.consumer._fetcher
        self.fetch_waits: list[int] = []
        self.fetcher_turns = 0
        send = client.send
        actions = fetcher._get_actions_per_node

        def counting_send(node_id: int, request: Any, *a: Any, **kw: Any) -> Any:
            if type(request).__name__ == "FetchRequest":
                self.fetch_waits.append(request._max_wait_ms)
            return send(node_id, request, *a, **kw)

        def counting_actions(assignment: Any) -> Any:
            self.fetcher_turns += 1
            return actions(assignment)

        monkeypatch.setattr(client, "send", counting_send)
        monkeypatch.setattr(fetcher, "_get_actions_per_node", counting_actions)


async def test_an_idle_consumer_long_polls_and_its_fetcher_rarely_wakes(
    infra: Infra, topics: str, producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over 6 s of quiet: about one fetch per FETCH_WAIT_IDLE_MS (two a second at Kafka's
    default of 500 ms), and aiokafka's fetcher task turns only when something happened (it
    turned five times a second on its own 200 ms clock)."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=3)
    handled: list[str] = []

    async def handler(env: Envelope) -> None:
        handled.append(env.data["widget_id"])

    runner = runner_for(infra, topic, f"{topics}idle", handler, producer)
    async with running(runner, assigned=True):
        await send(producer, topic, "w1")

        async def got_it() -> bool:
            return handled == ["w1"]

        await wait_for(got_it, timeout=30, message="the record handled")
        await idle(runner)
        await asyncio.sleep(FETCH_WAIT_IDLE_MS / 1000)  # the last busy fetch has returned
        requests = Requests(runner, monkeypatch)
        window = 6.0
        await asyncio.sleep(window)
    expected = window * 1000 / FETCH_WAIT_IDLE_MS
    assert requests.fetch_waits, "no fetch in 6 s"
    assert set(requests.fetch_waits) == {FETCH_WAIT_IDLE_MS}
    assert len(requests.fetch_waits) <= expected + 1
    # a turn per fetch answered, per idle poll handing out nothing, per fetcher clock tick
    assert requests.fetcher_turns <= 3 * (expected + 1)


async def test_a_record_after_a_quiet_spell_is_handled_at_once_and_fetching_turns_busy(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    """The idle long poll returns as soon as a record arrives: no added latency. The fetch sent
    while the record is handled already waits only FETCH_WAIT_BUSY_MS."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=3)
    handled_at: list[float] = []
    waits_while_handling: list[int] = []

    async def handler(env: Envelope) -> None:
        handled_at.append(time.monotonic())
        assert runner.consumer is not None
        waits_while_handling.append(runner.consumer._fetcher._fetch_max_wait_ms)

    runner = runner_for(infra, topic, f"{topics}wake", handler, producer)
    async with running(runner, assigned=True):
        await idle(runner)
        sent_at = time.monotonic()
        await send(producer, topic, "w1")

        async def got_it() -> bool:
            return len(handled_at) == 1

        await wait_for(got_it, timeout=30, message="the record handled")
    assert handled_at[0] - sent_at < 0.5, "the idle long poll held the record back"
    assert waits_while_handling == [FETCH_WAIT_BUSY_MS]


async def test_a_failure_after_a_quiet_spell_is_retried_at_its_backoff_not_the_idle_wait(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    """The partition is paused while its message waits; once resumed it needs a fetch of its
    own, which queues behind the fetch in flight. That fetch was sent busy (records had just
    come), so the retry starts within FETCH_WAIT_BUSY_MS of its backoff, not an idle wait."""
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=3)
    tries: list[float] = []

    async def handler(env: Envelope) -> None:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise RuntimeError("not yet")

    runner = runner_for(
        infra, topic, f"{topics}retry", handler, producer, max_attempts=5, retry_backoff=0.1
    )
    async with running(runner, assigned=True):
        await idle(runner)
        await send(producer, topic, "w1")

        async def done() -> bool:
            return len(tries) == 3

        await wait_for(done, timeout=30, message="three tries")
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    # backoffs 0.1 and 0.2 s, each plus at most one busy fetch wait (0.5 s), plus slack
    assert all(gap < 0.2 + FETCH_WAIT_BUSY_MS / 1000 + 0.4 for gap in gaps), gaps


async def test_stop_does_not_wait_out_the_idle_long_poll(
    infra: Infra, topics: str, producer: AIOKafkaProducer
) -> None:
    topic = f"{topics}widget.events"
    await ensure_topics(infra.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=3)

    async def handler(env: Envelope) -> None:
        return None

    runner = runner_for(infra, topic, f"{topics}stop", handler, producer)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.assigned.wait(), 60)
        await idle(runner)
        await asyncio.sleep(0.3)  # inside an idle poll and an idle fetch
    finally:
        began = time.monotonic()
        await runner.stop()
        await asyncio.wait_for(task, 30)
    assert time.monotonic() - began < 1.0
