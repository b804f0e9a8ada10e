"""Command-line entrypoints: one CLI per deployable (api / worker / migrate / rebuild-read-model) plus ops tools."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from chassis.logging import configure_logging
from chassis.messaging.connection import kafka_options
from chassis.messaging.consumer import TopicsNotFound
from chassis.messaging.envelope import headers_dict
from chassis.messaging.failures import describe, is_transient
from chassis.messaging.producer import create_producer
from chassis.messaging.topics import ALL_TOPICS, ensure_topics, with_dlqs
from chassis.read_model import RebuildRefused, RebuildReport
from chassis.runner import serve
from chassis.settings import BaseServiceSettings
from chassis.tracing import configure_tracing

Command = tuple[str, Callable[[], None]]


def upgrade(service_root: Path, database_url: str, revision: str = "heads") -> None:
    """``chassis.migrations.upgrade``, imported when ``migrate`` runs: Alembic (and Mako) are
    needed by that admin process alone, not at every api or worker start."""
    from chassis.migrations import upgrade as alembic_upgrade

    alembic_upgrade(service_root, database_url, revision)


def run_cli(prog: str, commands: dict[str, Command], argv: Sequence[str] | None = None) -> None:
    """Dispatch ``prog <command>``; each command is a process type or an admin process."""
    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _) in commands.items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    commands[args.command][1]()


S = TypeVar("S", bound=BaseServiceSettings)


def service_cli(
    prog: str,
    settings: Callable[[], S],
    *,
    api: Callable[[], None],
    worker: Callable[[], None],
    service_root: Path,
    after_migrate: Callable[[S], Coroutine[Any, Any, object]] | None = None,
    rebuild: Callable[[S], Coroutine[Any, Any, RebuildReport]] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """The CLI every service has: ``<prog> api | worker | migrate | rebuild-read-model``.

    ``api`` and ``worker`` start the process types (``main.run``, ``worker.run``). The admin
    processes (12-factor XII) read ``settings()`` and configure logging first: ``migrate``
    applies the migrations of ``service_root`` (the folder holding ``alembic.ini``) to every
    head, then awaits ``after_migrate(settings)`` (member seeds its admin account);
    ``rebuild-read-model``, offered only with ``rebuild``, awaits ``rebuild(settings)`` and
    prints the report as one JSON line. A refused rebuild (another one runs, or the service's
    check refused the swap) exits with status 1 and the reason, the live read model unchanged.
    So does an admin process that cannot reach its database or Kafka, or whose topics do not
    exist: one line naming the cause, no traceback (what an operator can fix is not a bug)."""

    def admin_settings() -> S:
        values = settings()
        configure_logging(values.SERVICE_NAME, values.LOG_LEVEL)
        return values

    def admin(command: str, run: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            try:
                run()
            except RebuildRefused as exc:
                raise SystemExit(f"{prog} {command} refused: {exc}") from exc
            except TopicsNotFound as exc:
                raise SystemExit(f"{prog} {command} failed: {exc}") from exc
            except Exception as exc:
                if not is_transient(exc):
                    raise  # a bug: keep the traceback
                raise SystemExit(
                    f"{prog} {command} failed: a dependency is unreachable: {describe(exc)}"
                ) from exc

        return guarded

    def migrate() -> None:
        values = admin_settings()
        upgrade(service_root, values.DATABASE_URL, "heads")
        if after_migrate is not None:
            asyncio.run(after_migrate(values))

    commands: dict[str, Command] = {
        "api": ("serve the HTTP API", api),
        "worker": ("run the consumers, the outbox relay and the background tasks", worker),
        "migrate": (
            "apply the database migrations (one-off admin process)",
            admin("migrate", migrate),
        ),
    }
    if rebuild is not None:
        run_rebuild = rebuild

        def rebuild_read_model() -> None:
            values = admin_settings()
            report = asyncio.run(run_rebuild(values))
            print(json.dumps(report.to_json()))

        commands["rebuild-read-model"] = (
            "replay the event topics into fresh read-model tables and swap them in",
            admin("rebuild-read-model", rebuild_read_model),
        )
    run_cli(prog, commands, argv)


def serve_http(
    settings: S, factory: Callable[[S], FastAPI], *, port: int, routed: bool = True
) -> None:
    """Start a process: logs and tracing first, then the app, then uvicorn until SIGTERM.

    ``routed``: whether a load balancer sends requests to this listener (an ``api``). Only
    then does SIGTERM keep it serving, readiness 503, for ``SHUTDOWN_DRAIN_SECONDS``: the time
    the endpoint removal takes to reach every proxy. A ``worker``'s port serves health and
    metrics to no Service (scraped by pod address), so its shutdown starts at once."""
    configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)
    configure_tracing(settings.SERVICE_NAME)
    app = factory(settings)
    # Everything built so far (modules, the app, its routes and models; about 140,000 objects)
    # lives as long as the process. Frozen, out of the cyclic collector's sight, it is no longer
    # walked by each full collection while the process serves (~80 ms of CPU each), nor by the
    # collections of interpreter finalization, which took ~0.4 s of CPU after every SIGTERM.
    gc.freeze()
    serve(
        app,
        host=settings.HTTP_HOST,
        port=port,
        drain_seconds=settings.SHUTDOWN_DRAIN_SECONDS if routed else 0.0,
        timeout_seconds=settings.SHUTDOWN_TIMEOUT_SECONDS,
        forwarded_allow_ips=settings.forwarded_allow_ips(),
    )


# --- ops CLI: `chassis topics create`, `chassis dlq list|replay` -------------------------------


async def _create_topics(settings: BaseServiceSettings) -> None:
    names = [settings.topic(t) for t in with_dlqs(list(ALL_TOPICS))]
    created = await ensure_topics(
        settings.kafka_connection(),
        names,
        partitions=settings.KAFKA_TOPIC_PARTITIONS,
        replication_factor=settings.KAFKA_REPLICATION_FACTOR,
    )
    print(json.dumps({"created": created, "total": len(names)}))


async def _dlq_records(settings: BaseServiceSettings, topic: str) -> list[dict[str, object]]:
    dlq_topic = settings.topic(topic if topic.endswith(".dlq") else f"{topic}.dlq")
    consumer = AIOKafkaConsumer(**kafka_options(settings.kafka_connection()), group_id=None)
    await consumer.start()
    try:
        # A fresh client knows no topic's partitions yet; fetching metadata also lets the
        # group-less coordinator's task start, without which stop() raises CancelledError.
        await consumer._client.force_metadata_update()
        parts = [
            TopicPartition(dlq_topic, p) for p in consumer.partitions_for_topic(dlq_topic) or []
        ]
        if not parts:
            return []
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        out: list[dict[str, object]] = []
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    h = headers_dict(r.headers)
                    out.append(
                        {
                            "dlq_topic": r.topic,
                            "partition": r.partition,
                            "offset": r.offset,
                            "key": r.key.decode() if r.key else None,
                            "type": h.get("ce_type"),
                            "id": h.get("ce_id"),
                            "original_topic": h.get("dlq_original_topic"),
                            "error": h.get("dlq_error"),
                            "attempts": h.get("dlq_attempts"),
                            "_value": r.value,
                            "_headers": r.headers,
                        }
                    )
        return out
    finally:
        await consumer.stop()


async def _dlq_list(settings: BaseServiceSettings, topic: str) -> None:
    for rec in await _dlq_records(settings, topic):
        print(
            json.dumps({k: v for k, v in rec.items() if not k.startswith("_")}, ensure_ascii=False)
        )


async def _dlq_replay(settings: BaseServiceSettings, topic: str, event_id: str | None) -> None:
    """Send parked messages back to their original topic (consumers are idempotent)."""
    producer = create_producer(settings.kafka_connection(), "dlq-replay")
    await producer.start()
    replayed = 0
    try:
        for rec in await _dlq_records(settings, topic):
            if event_id and rec["id"] != event_id:
                continue
            original = str(rec["original_topic"] or topic.removesuffix(".dlq"))
            headers = [(k, v) for k, v in rec["_headers"] if not k.startswith("dlq_")]  # type: ignore[attr-defined]
            key = rec["key"]
            await producer.send_and_wait(
                original,
                value=rec["_value"],
                key=str(key).encode() if key else None,
                headers=headers,
            )
            replayed += 1
    finally:
        await producer.stop()
    print(json.dumps({"replayed": replayed}))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chassis", description="Operations tools.")
    sub = parser.add_subparsers(dest="group", required=True)
    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="action", required=True
    )
    topics.add_parser("create", help="create every topic and its .dlq twin")
    dlq = sub.add_parser("dlq", help="dead-letter topics").add_subparsers(
        dest="action", required=True
    )
    dl = dlq.add_parser("list", help="list parked messages")
    dl.add_argument("topic", help="topic or its .dlq, e.g. board.events")
    dr = dlq.add_parser("replay", help="send parked messages back to their topic")
    dr.add_argument("topic")
    dr.add_argument("--id", dest="event_id", default=None, help="only this event id")
    args = parser.parse_args(argv)
    settings = BaseServiceSettings()
    if args.group == "topics":
        asyncio.run(_create_topics(settings))
    elif args.action == "list":
        asyncio.run(_dlq_list(settings, args.topic))
    else:
        asyncio.run(_dlq_replay(settings, args.topic, args.event_id))
    sys.exit(0)
