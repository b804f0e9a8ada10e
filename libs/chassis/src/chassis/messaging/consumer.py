"""Consumer runner: manual offset commits; transient failures are waited out, only permanent ones dead-lettered.

The failure rule every consumer of the project follows (docs/CONVENTIONS.md "Failures of
consumers"):

- a message's offset is committed only after its handler succeeded or the message was safely
  written to ``<topic>.dlq``; the runner never moves past a message it has not finished;
- a *transient* failure (database, Redis or Kafka unreachable, timeouts, serialization failures,
  deadlocks; see ``chassis.messaging.failures``) is retried with capped exponential backoff for as
  long as it takes: the partition is paused and rewound to the message, and the poll loop goes on,
  so the group membership and the other partitions stay alive. While it waits, readiness is 503
  and ``consumer_waiting_partitions`` is above 0;
- an *unclassified* error is retried ``max_attempts`` times; then the infrastructure is probed.
  A failing probe makes the error transient. A healthy probe earns the message one more try,
  because the failure may have happened in an outage that ended before the probe; only if that
  try fails again with the probe still healthy is the message dead-lettered (the error repeats
  with the infrastructure healthy);
- a *permanent* failure (undecodable message, schema validation, ``PermanentFailure``) goes to
  the DLQ at once. The DLQ copy carries ``dlq_*`` headers, ``dlq_reason`` being ``permanent`` or
  ``exhausted``. A failed DLQ publish is retried with the same capped backoff;
- after the DLQ ack and before the offset commit, the optional ``on_dead_letter`` hook is called
  with the envelope and the error (a saga participant answers the dead-lettered command with a
  FAILURE reply, so its saga does not wait forever). A transient failure of the hook is waited
  out like a handler's; another is retried ``max_attempts`` times, then logged and given up
  (the DLQ copy stays);
- the partitions of a fetched batch are handled concurrently, one task per partition, each in
  offset order (order is kept per partition, which is per key); the offsets are committed once
  per batch, one commit for every partition that moved. A crash before that commit redelivers
  the batch's handled messages, which the inbox absorbs (at-least-once, effects exactly once);
- a rebalance can revoke a partition while its message is being handled: the revocation waits
  until the batch in hand has finished its current message per partition and committed, then
  lets the partition go. The partition is also checked before each record and before any
  pause, seek or commit, and the rest of an already-fetched batch of a revoked partition is
  dropped (its next owner reads it again from the committed offset).

Each message handled is observed in ``event_age_seconds`` (from the envelope's ``time``, the
commit of the event at its source, to the commit of its effects here): the event-to-read-model
lag a dashboard or a benchmark reads from ``/metrics``.

Handlers must be idempotent: they record the event id in the inbox in the same transaction as
their effect, because a retry, a crash before the commit, or a rebalance redelivers the message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Histogram

from chassis.health import NotReady
from chassis.logging import get_logger
from chassis.messaging.connection import KafkaTarget, kafka_options
from chassis.messaging.envelope import (
    Envelope,
    MalformedMessage,
    from_consumer_record,
    headers_dict,
)
from chassis.messaging.failures import (
    Action,
    Backoff,
    Failure,
    Probe,
    classify,
    decide,
    describe,
)
from chassis.messaging.producer import ProducerSource, resolve
from chassis.messaging.topics import dlq
from chassis.metrics import (
    CONSUMER_LAG,
    CONSUMER_TRANSIENT_FAILURES,
    CONSUMER_WAITING,
    DEAD_LETTERS,
    MESSAGES_HANDLED,
)

log = get_logger("chassis.consumer")
tracer = trace.get_tracer("chassis.messaging")

Handler = Callable[[Envelope], Awaitable[None]]
#: Fetched records per partition, as ``getmany`` returns them.
Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
#: Called with the envelope and the error once a decodable message was safely dead-lettered.
DeadLetterHook = Callable[[Envelope, BaseException], Awaitable[None]]

#: The longest a poll waits for records, in milliseconds. Records return as soon as they are
#: fetched, so a long wait costs no latency; it only sets how often an idle consumer wakes.
#: Paused partitions shorten it to their backoff (``_resume_due``), and ``stop`` interrupts it.
POLL_MS = 2000
#: Records per poll, over all assigned partitions.
MAX_RECORDS = 100
#: Group session: a member silent this long is dropped and its partitions reassigned. The
#: heartbeat goes at a third of it, as Kafka recommends, so two may be lost without harm.
SESSION_TIMEOUT_MS = 10000
HEARTBEAT_INTERVAL_MS = 3000
#: How often ``kafka_consumer_lag`` is refreshed (seconds): on a clock, not per poll.
LAG_REPORT_SECONDS = 5.0
#: The longest the broker holds a fetch that finds no record (Kafka's ``fetch.max.wait.ms``,
#: milliseconds) while the consumer is busy: records came in the last ``IDLE_AFTER_SECONDS``,
#: or a partition waits out a failure. A partition paused when a fetch was sent is not in it,
#: and the fetch it needs once resumed queues behind that one on the broker's connection (a
#: broker answers one request per connection at a time), so this bounds how late a retry starts.
FETCH_WAIT_BUSY_MS = 500
#: The same once idle: a quiet consumer sends one fetch per this many milliseconds instead of
#: two a second. A fetch returns as soon as a record arrives, so events are not delayed; the
#: first fetch after a rebalance in a quiet group may queue behind a held one this long.
FETCH_WAIT_IDLE_MS = 2000
#: Seconds without a record, and with no partition waiting, before fetches wait idle.
IDLE_AFTER_SECONDS = 5.0
#: aiokafka's fetcher task also wakes on this clock (milliseconds; ``consumer_timeout_ms``),
#: besides the events it waits on: records handed out, a partition resumed or sought, an
#: assignment changed, a fetch answered. Its default of 200 ms woke each idle consumer five
#: times a second for nothing.
FETCHER_WAKE_MS = 2000

#: Seconds from an event's ``time`` (its commit at the source, through the outbox) to the commit
#: of its effects by this consumer: the event-to-read-model lag, per consumer group. The buckets
#: resolve the goal (p99 <= 100 ms) and still show a backlog of a minute.
EVENT_AGE = Histogram(
    "event_age_seconds",
    "Seconds from an event's time to the commit of its effects by a consumer.",
    ["service", "topic", "group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class TopicsNotFound(LookupError):
    """A topic to replay does not exist on the brokers (never created, another
    ``KAFKA_TOPIC_PREFIX``, or no permission to describe it). ``topics``: the missing names."""

    def __init__(self, topics: list[str]) -> None:
        super().__init__(
            f"topics not found: {', '.join(topics)} (created by `chassis topics create` "
            "with the same KAFKA_TOPIC_PREFIX)"
        )
        self.topics = topics


@dataclass
class _DeadLetter:
    """A dead-letter decision whose DLQ publish has yet to succeed."""

    error: BaseException
    reason: str  # permanent | exhausted
    attempts: int
    envelope: Envelope | None = None  # None when the message could not be decoded
    published: bool = False  # the DLQ acknowledged the copy
    publish_tries: int = 0  # failed DLQ publishes, for the backoff
    hook_tries: int = 0  # failed on_dead_letter calls that were not transient


@dataclass
class _Waiting:
    """A partition held at ``offset`` until ``resume_at`` (loop time)."""

    offset: int
    attempts: int
    since: dt.datetime
    resume_at: float
    error: str
    transient: bool
    unclassified: int = 0  # failures neither transient nor permanent, toward max_attempts
    healthy_probe: bool = False  # the last failure was followed by a healthy probe
    dead_letter: _DeadLetter | None = None


class _ForgetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """A revoked partition's waiting state is dropped: its next owner re-reads it from the
    committed offset (never past the waiting message) and the inbox absorbs any repeat."""

    def __init__(self, runner: ConsumerRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.runner._generation += 1  # batches fetched before this are stale
        # The batch in hand stops after the message each partition is handling and commits
        # what it finished; only then may another member start reading these partitions.
        await self.runner._idle.wait()
        self.runner._forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.runner._forget(assigned)
        # A rebalance often comes with traffic (a member joined or left): fetch as if busy.
        self.runner._records_at = asyncio.get_running_loop().time()


class ConsumerRunner:
    """Consume ``topics`` in consumer group ``group_id`` and call ``handler`` for every envelope.

    ``retry_backoff`` and ``retry_backoff_max`` (seconds) shape the wait between tries of one
    message; ``probe`` raises when the process's infrastructure is down; ``on_dead_letter`` is
    called after a decodable message was dead-lettered (see module docstring).
    """

    def __init__(
        self,
        *,
        kafka: KafkaTarget,
        topics: list[str],
        group_id: str,
        handler: Handler,
        producer: ProducerSource,
        service: str,
        max_attempts: int = 3,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 10.0,
        probe: Probe | None = None,
        client_id: str | None = None,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.group_id = group_id
        self.handler = handler
        self._producer = producer
        self.service = service
        self.max_attempts = max_attempts
        self.backoff = Backoff(initial=retry_backoff, cap=max(retry_backoff, retry_backoff_max))
        self.probe = probe
        self.on_dead_letter = on_dead_letter
        self._generation = 0  # rebalances that revoked partitions so far
        self.client_id = client_id or f"{service}-{group_id}"
        self._stopping = asyncio.Event()
        self._waiting: dict[TopicPartition, _Waiting] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned = asyncio.Event()
        self._idle = asyncio.Event()  # set while no batch is being handled
        self._idle.set()
        self._poll: asyncio.Future[Batch] | None = None  # the poll in progress
        self._lag_reported_at = float("-inf")
        self._records_at = float("-inf")  # loop time records last came, for the fetch wait
        CONSUMER_WAITING.labels(service, group_id).set(0)

    @property
    def producer(self) -> AIOKafkaProducer:
        return resolve(self._producer)

    @property
    def waiting_partitions(self) -> int:
        """How many partitions are held by a transient failure now."""
        return sum(1 for w in self._waiting.values() if w.transient)

    async def check(self) -> None:
        """Readiness check: raises ``NotReady`` while a partition waits out a transient failure."""
        stuck = [w for w in self._waiting.values() if w.transient]
        if stuck:
            oldest = min(stuck, key=lambda w: w.since)
            raise NotReady(
                f"consumer {self.group_id}: waiting out {oldest.error} "
                f"since {oldest.since.isoformat(timespec='seconds')}"
            )

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            **kafka_options(self.kafka),
            group_id=self.group_id,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=MAX_RECORDS,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            fetch_max_wait_ms=FETCH_WAIT_BUSY_MS,
            consumer_timeout_ms=FETCHER_WAKE_MS,
        )
        consumer.subscribe(self.topics, listener=_ForgetOnRebalance(self))
        self.consumer = consumer
        await consumer.start()
        log.info("consumer.started", group=self.group_id, topics=self.topics)
        try:
            while not self._stopping.is_set():
                # Polling goes on while partitions wait: it keeps the group membership
                # (max.poll.interval) and the other partitions alive.
                batches = await self._next_batch(consumer, self._resume_due(consumer))
                if consumer.assignment():
                    self.assigned.set()
                if batches:
                    await self._handle_batch(consumer, batches)
                await self._report_lag_due(consumer)
        finally:
            self._forget(list(self._waiting))
            await consumer.stop()  # leaves the group; offsets were committed per batch
            log.info("consumer.stopped", group=self.group_id)

    async def stop(self) -> None:
        """Finish the message in hand per partition, commit, and leave the group."""
        self._stopping.set()
        if self._poll is not None and not self._poll.done():
            self._poll.cancel()  # an idle poll may wait POLL_MS: no reason to wait it out

    async def _next_batch(self, consumer: AIOKafkaConsumer, timeout_ms: int) -> Batch:
        """The next fetched records per partition, or none after ``timeout_ms`` or ``stop``."""
        self._poll = asyncio.ensure_future(self._fetched(consumer, timeout_ms))
        try:
            # ``wait`` does not raise when the poll is cancelled by ``stop``; if this task is
            # cancelled, the poll goes with it.
            await asyncio.wait({self._poll})
        except asyncio.CancelledError:
            self._poll.cancel()
            raise
        if self._poll.cancelled():
            return {}
        return self._poll.result()

    async def _fetched(self, consumer: AIOKafkaConsumer, timeout_ms: int) -> Batch:
        """``getmany``, then the wait of the next fetch set before that fetch is sent: handing
        out records wakes aiokafka's fetcher task, which runs only once this task yields."""
        batch: Batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=MAX_RECORDS)
        self._pace_fetches(consumer, fetched=bool(batch))
        return batch

    def _pace_fetches(self, consumer: AIOKafkaConsumer, *, fetched: bool) -> None:
        """Busy (records lately, or a partition waiting): fetches wait ``FETCH_WAIT_BUSY_MS``
        at the broker, so a resumed partition is fetched soon. Idle: ``FETCH_WAIT_IDLE_MS``.

        aiokafka reads the wait from its fetcher each time it builds a request and has no
        public setter; tests/integration/chassis/test_consumer_idle.py pins this attribute."""
        now = asyncio.get_running_loop().time()
        if fetched:
            self._records_at = now
        busy = bool(self._waiting) or now - self._records_at < IDLE_AFTER_SECONDS
        consumer._fetcher._fetch_max_wait_ms = FETCH_WAIT_BUSY_MS if busy else FETCH_WAIT_IDLE_MS

    async def _handle_batch(
        self,
        consumer: AIOKafkaConsumer,
        batches: Batch,
    ) -> None:
        """Handle each partition's records in a task of its own, then commit every partition
        that moved in one request. A rebalance listener waits for this (``_idle``)."""
        generation = self._generation
        self._idle.clear()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {
                    tp: group.create_task(self._drain(consumer, tp, records, generation))
                    for tp, records in batches.items()
                }
            offsets = {tp: t.result() for tp, t in tasks.items() if t.result() is not None}
            if offsets:
                await self._commit(consumer, offsets)  # type: ignore[arg-type]
        finally:
            self._idle.set()

    async def _drain(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
        generation: int,
    ) -> int | None:
        """Handle ``tp``'s records in offset order; returns the offset to commit (the one after
        the last finished message), None when none was finished."""
        finished: int | None = None
        for record in records:
            if self._stopping.is_set():
                break
            if not self._still_ours(consumer, tp, generation, record):
                break
            if not await self._process(consumer, tp, record):
                break  # the partition waits at this record; later ones come again
            finished = record.offset + 1
        return finished

    def _still_ours(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        generation: int,
        record: ConsumerRecord[bytes, bytes],
    ) -> bool:
        """False when a rebalance since the fetch makes the rest of ``tp``'s batch stale: the
        partition was revoked (its new owner reads it from the committed offset), or revoked and
        given back (the consumer's position went back to the committed offset, which reads the
        same records again)."""
        if tp in consumer.assignment() and generation == self._generation:
            return True
        log.info(
            "consumer.batch_dropped",
            group=self.group_id,
            partition=str(tp),
            from_offset=record.offset,
            assigned=tp in consumer.assignment(),
        )
        return False

    # --- waiting out a failure --------------------------------------------------------------

    def _resume_due(self, consumer: AIOKafkaConsumer) -> int:
        """Resume the partitions whose backoff has expired; returns how long the next poll may
        wait (ms) so the next expiry is not overslept."""
        now = asyncio.get_running_loop().time()
        timeout = POLL_MS
        paused = consumer.paused()
        for tp, w in self._waiting.items():
            if tp not in paused:
                continue
            if w.resume_at <= now:
                consumer.resume(tp)
            else:
                timeout = min(timeout, max(1, int((w.resume_at - now) * 1000)))
        return timeout

    def _wait(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        record: ConsumerRecord[bytes, bytes],
        attempts: int,
        exc: BaseException,
        transient: bool,
        unclassified: int,
        dead_letter: _DeadLetter | None = None,
        healthy_probe: bool = False,
    ) -> None:
        """Hold ``tp`` at ``record``: pause it, rewind to the record, resume after the backoff.

        ``attempts`` (1, 2, ...) picks the delay from the capped schedule. A partition revoked
        meanwhile is left alone: pausing or seeking it would raise, and its next owner reads
        the record again from the committed offset."""
        if tp not in consumer.assignment():
            self._forget([tp])
            log.info(
                "consumer.wait_dropped",
                group=self.group_id,
                partition=str(tp),
                offset=record.offset,
                error=describe(exc)[:300],
            )
            return
        delay = self.backoff.delay(attempts)
        error = describe(exc)[:300]
        w = self._waiting.get(tp)
        if w is None or w.offset != record.offset:
            w = _Waiting(record.offset, attempts, dt.datetime.now(dt.UTC), 0.0, error, transient)
            self._waiting[tp] = w
        w.attempts = attempts
        w.unclassified = unclassified
        w.error = error
        w.transient = transient
        w.dead_letter = dead_letter
        w.healthy_probe = healthy_probe
        w.resume_at = asyncio.get_running_loop().time() + delay
        consumer.pause(tp)
        consumer.seek(tp, record.offset)
        if transient:
            CONSUMER_TRANSIENT_FAILURES.labels(self.service, record.topic, self.group_id).inc()
        self._report_waiting()
        log.warning(
            "consumer.waiting" if transient else "consumer.retrying",
            group=self.group_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempt=attempts,
            delay=round(delay, 3),
            transient=transient,
            error=error,
        )

    def _done(self, tp: TopicPartition) -> None:
        w = self._waiting.pop(tp, None)
        if w is not None:
            self._report_waiting()
            if w.transient:
                log.info(
                    "consumer.recovered",
                    group=self.group_id,
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=w.offset,
                    attempts=w.attempts,
                    waited_seconds=round((dt.datetime.now(dt.UTC) - w.since).total_seconds(), 3),
                )

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if self._waiting.pop(tp, None) is not None:
                log.info("consumer.waiting_dropped", group=self.group_id, partition=str(tp))
        self._report_waiting()

    def _report_waiting(self) -> None:
        CONSUMER_WAITING.labels(self.service, self.group_id).set(self.waiting_partitions)

    async def _infrastructure_healthy(self) -> bool:
        if self.probe is None:
            return True
        try:
            await asyncio.wait_for(self.probe(), 5.0)
        except Exception as exc:
            log.warning("consumer.probe_failed", group=self.group_id, error=describe(exc)[:300])
            return False
        return True

    # --- one message ------------------------------------------------------------------------

    async def _process(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]
    ) -> bool:
        """Handle or dead-letter ``record``; False when the partition must wait at it instead."""
        w = self._waiting.get(tp)
        if w is not None and w.offset != record.offset:
            self._forget([tp])  # the partition moved (e.g. a seek by a rebalance)
            w = None
        attempts = w.attempts if w is not None else 0
        unclassified = w.unclassified if w is not None else 0
        parked = w.dead_letter if w is not None else None
        if parked is None:
            try:
                envelope = from_consumer_record(record)
            except MalformedMessage as exc:
                parked = _DeadLetter(exc, "permanent", 0)
            else:
                attempts += 1
                error = await self._call(record, envelope, attempts)
                if error is None:
                    self._done(tp)
                    return True
                kind = classify(error)
                unclassified += kind is Failure.UNCLASSIFIED
                healthy = None
                if kind is Failure.UNCLASSIFIED and unclassified >= self.max_attempts:
                    healthy = await self._infrastructure_healthy()
                confirmed = w is not None and w.healthy_probe
                action = decide(kind, unclassified, self.max_attempts, healthy, confirmed=confirmed)
                if action is not Action.DEAD_LETTER:
                    # RETRY: an unknown error gets a few quick tries before the probe is asked,
                    # and one more after a healthy probe; WAIT: the infrastructure is down, for
                    # as long as it takes.
                    transient = action is Action.WAIT
                    self._wait(
                        consumer,
                        tp,
                        record,
                        attempts,
                        error,
                        transient,
                        unclassified,
                        healthy_probe=healthy is True,
                    )
                    return False
                reason = "permanent" if kind is Failure.PERMANENT else "exhausted"
                parked = _DeadLetter(error, reason, attempts, envelope)
        if not parked.published:
            try:
                await self._dead_letter(record, parked)
            except Exception as exc:  # Kafka failing: keep the message and the decision, try later
                parked.publish_tries += 1
                self._wait(
                    consumer, tp, record, parked.publish_tries, exc, True, unclassified, parked
                )
                return False
            parked.published = True
        if not await self._after_dead_letter(consumer, tp, record, parked, unclassified):
            return False
        self._done(tp)
        return True

    async def _after_dead_letter(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        record: ConsumerRecord[bytes, bytes],
        parked: _DeadLetter,
        unclassified: int,
    ) -> bool:
        """Call ``on_dead_letter``; False when the partition must wait to call it again."""
        if self.on_dead_letter is None or parked.envelope is None:
            return True
        try:
            await self.on_dead_letter(parked.envelope, parked.error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            transient = classify(exc) is Failure.TRANSIENT
            if not transient:
                parked.hook_tries += 1
                if parked.hook_tries >= self.max_attempts:
                    log.error(
                        "consumer.dead_letter_hook_failed",
                        group=self.group_id,
                        topic=record.topic,
                        offset=record.offset,
                        tries=parked.hook_tries,
                        error=describe(exc)[:500],
                    )
                    return True  # the DLQ copy stays; the offset moves on
            parked.publish_tries += 1
            self._wait(
                consumer, tp, record, parked.publish_tries, exc, transient, unclassified, parked
            )
            return False
        return True

    async def _call(
        self, record: ConsumerRecord[bytes, bytes], envelope: Envelope, attempt: int
    ) -> Exception | None:
        """Run the handler in a consumer span; returns its error (None on success)."""
        parent = propagate.extract(headers_dict(record.headers))
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.consumer.group": self.group_id,
                "messaging.kafka.message.offset": record.offset,
                "messaging.kafka.attempt": attempt,
            },
        ) as span:
            try:
                await self.handler(envelope)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                log.warning(
                    "consumer.handler_failed",
                    group=self.group_id,
                    topic=record.topic,
                    type=envelope.type,
                    event_id=envelope.id,
                    attempt=attempt,
                    error=describe(exc)[:500],
                )
                return exc
        MESSAGES_HANDLED.labels(self.service, record.topic, "ok").inc()
        age = (dt.datetime.now(dt.UTC) - envelope.time).total_seconds()
        EVENT_AGE.labels(self.service, record.topic, self.group_id).observe(max(0.0, age))
        return None

    async def _commit(
        self, consumer: AIOKafkaConsumer, offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) in one request, retrying
        with backoff while Kafka refuses. A partition that went to another member is left out,
        and a commit refused for that reason is dropped: the new owner re-reads the messages
        and the inbox makes the repeat harmless."""
        attempt = 0
        while True:
            owned = {tp: o for tp, o in offsets.items() if tp in consumer.assignment()}
            for tp in offsets.keys() - owned.keys():
                log.info(
                    "consumer.commit_dropped",
                    group=self.group_id,
                    partition=str(tp),
                    offset=offsets[tp],
                    error="partition revoked",
                )
            if not owned:
                return
            try:
                await consumer.commit(owned)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning(
                    "consumer.commit_dropped",
                    group=self.group_id,
                    offsets=_offsets_text(owned),
                    error=describe(exc)[:300],
                )
                return
            except Exception as exc:
                attempt += 1
                if self._stopping.is_set():
                    log.warning(
                        "consumer.commit_abandoned",
                        group=self.group_id,
                        offsets=_offsets_text(owned),
                        error=describe(exc)[:300],
                    )
                    return
                delay = self.backoff.delay(attempt)
                log.warning(
                    "consumer.commit_retry",
                    group=self.group_id,
                    offsets=_offsets_text(owned),
                    attempt=attempt,
                    delay=round(delay, 3),
                    error=describe(exc)[:300],
                )
                await asyncio.sleep(delay)

    async def _report_lag_due(self, consumer: AIOKafkaConsumer) -> None:
        """Refresh ``kafka_consumer_lag`` if the last report is ``LAG_REPORT_SECONDS`` old."""
        now = asyncio.get_running_loop().time()
        if now - self._lag_reported_at < LAG_REPORT_SECONDS:
            return
        self._lag_reported_at = now
        await self._report_lag(consumer)

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile
                continue
            CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition), self.group_id).set(
                max(0, high - position)
            )

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], parked: _DeadLetter) -> None:
        """Park the message with its error; the offset is committed only after the DLQ ack."""
        exc = parked.error
        error = describe(exc)[:1000]
        headers = [
            *[(k, v) for k, v in (record.headers or []) if not k.startswith("dlq_")],
            ("dlq_error", error.encode()),
            ("dlq_stacktrace", "".join(traceback.format_exception(exc))[-4000:].encode()),
            ("dlq_attempts", str(parked.attempts).encode()),
            ("dlq_reason", parked.reason.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self.group_id.encode()),
        ]
        await self.producer.send_and_wait(
            dlq(record.topic), value=record.value, key=record.key, headers=headers
        )
        DEAD_LETTERS.labels(self.service, record.topic).inc()
        MESSAGES_HANDLED.labels(self.service, record.topic, "dead_lettered").inc()
        log.error(
            "consumer.dead_lettered",
            group=self.group_id,
            topic=record.topic,
            offset=record.offset,
            dlq=dlq(record.topic),
            reason=parked.reason,
            attempts=parked.attempts,
            error=error,
        )


def _offsets_text(offsets: Mapping[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items()))


async def replay(
    kafka: KafkaTarget,
    topics: list[str],
    handler: Handler,
    *,
    idle_timeout: float = 2.0,
    start_offsets: Mapping[TopicPartition, int] | None = None,
) -> dict[TopicPartition, int]:
    """Read ``topics`` from the beginning up to today's end offsets (no consumer group) and call
    ``handler`` for each envelope. Used to rebuild read models; returns the end offsets reached.

    ``start_offsets`` (e.g. the end offsets a previous call returned) resumes those partitions
    there instead of at the beginning: a rebuild catches up with what arrived meanwhile.

    Raises :class:`TopicsNotFound` when any of ``topics`` does not exist: replaying the others
    alone would rebuild a read model that silently lacks a topic's events."""
    consumer = AIOKafkaConsumer(
        **kafka_options(kafka),
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        if any(not consumer.partitions_for_topic(t) for t in topics):
            await consumer._client.force_metadata_update()  # the first metadata may be partial
        missing = [t for t in topics if not consumer.partitions_for_topic(t)]
        if missing:
            raise TopicsNotFound(missing)
        partitions = [
            TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        start = dict(start_offsets or {})
        for tp in partitions:
            if start.get(tp, 0) > 0:
                consumer.seek(tp, start[tp])
        end: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > start.get(tp, 0)}
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        while remaining:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    try:
                        env = from_consumer_record(record)
                    except MalformedMessage:
                        continue
                    await handler(env)
                    last_progress = loop.time()
                if tp in remaining and await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if remaining and loop.time() - last_progress > max(idle_timeout, 30.0):
                raise TimeoutError(f"replay stalled on {sorted(map(str, remaining))}")
        return end
    finally:
        await consumer.stop()
