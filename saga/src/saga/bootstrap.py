"""Composition root: wires the saga api and the saga worker from their settings."""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI

from chassis.app import create_app
from chassis.auth import install_verifier
from chassis.http import create_http_client
from chassis.lifecycle import Phase, Runtime
from chassis.periodic import PeriodicTask
from chassis.resources import Resources, attach
from saga import metrics
from saga.config import Settings
from saga.definitions import DEFINITIONS
from saga.engine import SagaEngine
from saga.entrypoints import api
from saga.orchestrator import Policy
from saga.qna import AcceptanceChecks, HttpAcceptanceChecks
from saga.store import SagaUnitOfWork
from saga.sweeper import DeadlineSweeper
from saga.worker import wait_for_assignment

#: How long recovery waits for the reply consumer's partitions before it goes ahead anyway.
ASSIGNMENT_WAIT_SECONDS = 60.0


def policy(settings: Settings) -> Policy:
    return Policy(
        step_timeout=dt.timedelta(seconds=settings.STEP_TIMEOUT_SECONDS),
        compensation_max_attempts=settings.COMPENSATION_MAX_ATTEMPTS,
        compensation_retry_delay=dt.timedelta(seconds=settings.COMPENSATION_RETRY_SECONDS),
        resend_timeout_cap=dt.timedelta(seconds=settings.RESEND_TIMEOUT_CAP_SECONDS),
        retry_backoff=dt.timedelta(seconds=settings.RETRY_BACKOFF_SECONDS),
        retry_backoff_cap=dt.timedelta(seconds=settings.RETRY_BACKOFF_CAP_SECONDS),
        retriable_max_attempts=settings.RETRIABLE_MAX_ATTEMPTS,
    )


def build_engine(settings: Settings, res: Resources) -> SagaEngine:
    return SagaEngine(
        lambda: SagaUnitOfWork(res.sessions, settings.SERVICE_NAME),
        DEFINITIONS,
        policy(settings),
        topic_prefix=settings.KAFKA_TOPIC_PREFIX,
    )


def build_api(settings: Settings, qna: AcceptanceChecks | None = None) -> FastAPI:
    """``saga api``: starts sagas, shows them, and sets fault flags. ``qna`` replaces the HTTP
    pre-check client (tests)."""
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=True, redis=True, kafka=False)
    metrics.register_types(list(DEFINITIONS))
    app = create_app(settings, runtime, title="saga", routers=[api.router])
    assert res.verifier is not None
    install_verifier(app, res.verifier)
    app.state.engine = build_engine(settings, res)
    app.state.faults = res.faults()
    app.state.qna = qna

    if qna is None:

        async def open_qna_client() -> None:
            client = create_http_client(
                settings.QNA_URL, timeout=settings.QNA_TIMEOUT_SECONDS, attempts=2
            )
            app.state.qna = HttpAcceptanceChecks(client)
            runtime.on_shutdown("qna http client", client.aclose, Phase.POOLS)

        runtime.on_startup("qna http client", open_qna_client)
    return app


def build_worker(settings: Settings) -> FastAPI:
    """``saga worker``: reply consumer, deadline sweeper (after recovery), outbox relay, gauge."""
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=True, redis=False, kafka=True, verifier=False)
    metrics.register_types(list(DEFINITIONS))
    engine = build_engine(settings, res)
    res.add_outbox_relay()
    replies = res.add_consumer("saga-orchestrator", ["saga.replies"], engine.handle_reply)

    async def recover() -> None:
        await wait_for_assignment(replies.assigned, ASSIGNMENT_WAIT_SECONDS)
        await engine.recover()

    sweeper = DeadlineSweeper(
        engine.sweep_until_next,
        settings.SWEEP_INTERVAL_SECONDS,
        idle_cap=min(settings.SWEEP_IDLE_INTERVAL_SECONDS, settings.STEP_TIMEOUT_SECONDS),
        before_first=recover,
    )
    engine.on_deadline = sweeper.deadline_written  # a sooner deadline written here wakes it
    runtime.add_background("deadline sweeper", sweeper, Phase.CONSUMERS)
    runtime.add_background(
        "in-flight gauge",
        PeriodicTask(
            "in-flight gauge", engine.refresh_in_flight, settings.IN_FLIGHT_REFRESH_SECONDS
        ),
        Phase.CONSUMERS,
    )
    app = create_app(settings, runtime, title="saga worker", docs=False)
    app.state.engine = engine
    return app
