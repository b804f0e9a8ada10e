"""Composition root: wires the board service's adapters into its process types (api, worker) and the rebuild."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping

from fastapi import FastAPI
from redis.asyncio import Redis

from board.adapters.first_page_cache import FirstPageCache
from board.adapters.view_counter import ViewCounter
from board.config import Settings
from board.entrypoints import api, saga_handlers
from board.entrypoints.background import view_count_flush
from board.entrypoints.errors import install_error_handlers
from board.entrypoints.event_handlers import TOPICS, EventConsumer
from board.service_layer import handlers
from board.service_layer.projector import READ_MODEL
from board.service_layer.unit_of_work import BoardUnitOfWork
from chassis.app import create_app
from chassis.auth import install_verifier
from chassis.lifecycle import Phase, Runtime
from chassis.periodic import PeriodicTask
from chassis.read_model import ReadModel, RebuildReport, rebuild_from_settings
from chassis.redis import create_redis
from chassis.resources import attach
from chassis.saga import SagaParticipant

SERVICE = "board"


def build_api(settings: Settings) -> FastAPI:
    """``board api``: the HTTP API (PostgreSQL, Redis for view counts and first pages, JWKS)."""
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=True, redis=True, kafka=False, verifier=True)
    app = create_app(
        settings,
        runtime,
        title="board",
        description="Boards, posts and comments (게시판관리).",
        routers=[api.router],
    )
    install_error_handlers(app)
    assert res.verifier is not None
    install_verifier(app, res.verifier)
    app.state.sessions = res.sessions
    app.state.uow_factory = lambda: BoardUnitOfWork(res.sessions)
    app.state.view_counter = ViewCounter(res.cache, settings.REDIS_KEY_PREFIX)
    app.state.first_page_cache = (
        first_page_cache(res.cache, settings) if settings.FIRST_PAGE_CACHE_SECONDS > 0 else None
    )
    return app


def first_page_cache(redis: Redis, settings: Settings) -> FirstPageCache:
    return FirstPageCache(redis, settings.REDIS_KEY_PREFIX, settings.FIRST_PAGE_CACHE_SECONDS)


def build_worker(settings: Settings) -> FastAPI:
    """``board worker``: outbox relay, projector, saga participant and the view-count flush."""
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=True, redis=True, kafka=True, verifier=False)

    def uow_factory() -> BoardUnitOfWork:
        return BoardUnitOfWork(res.sessions)

    res.add_outbox_relay()
    # the worker invalidates even when the API's cache is off, so turning it on is safe
    first_pages = first_page_cache(res.cache, settings)
    consumer = EventConsumer(uow_factory, first_pages, service=settings.SERVICE_NAME)
    res.add_consumer("board-projector", TOPICS, consumer.handle)
    res.add_saga_participant(
        SagaParticipant(SERVICE, uow_factory, saga_handlers.HANDLERS, res.faults())
    )

    async def record_views(counts: Mapping[uuid.UUID, int]) -> None:
        changed = await handlers.record_views(uow_factory(), counts)
        await first_pages.invalidate_committed(changed)

    runtime.add_background(
        "view count flush",
        PeriodicTask(
            "view count flush",
            view_count_flush(ViewCounter(res.cache, settings.REDIS_KEY_PREFIX), record_views),
            settings.VIEW_FLUSH_SECONDS,
            run_on_stop=True,
        ),
        Phase.CONSUMERS,
    )
    res.add_checkpoint_report()
    return create_app(settings, runtime, title="board worker", docs=False)


def read_model(first_pages: FirstPageCache | None = None) -> ReadModel:
    """The post list read model (``board.service_layer.projector.READ_MODEL``); with
    ``first_pages``, a rebuild's swap is followed by invalidating every cached first page, since
    any of them may differ from the rebuilt table."""
    if first_pages is None:
        return READ_MODEL
    cache = first_pages

    async def invalidate_every_first_page() -> None:
        await cache.invalidate_committed(None)

    return dataclasses.replace(READ_MODEL, after_swap=invalidate_every_first_page)


async def rebuild_read_model(settings: Settings) -> RebuildReport:
    """``board rebuild-read-model``: replay ``board.events`` and ``member.events`` into fresh
    tables beside the running worker and swap them in (``chassis.read_model.rebuild``). Raises
    ``chassis.read_model.RebuildRefused`` when another rebuild runs or a live post is missing
    from the topics (the live read model is kept)."""
    redis = create_redis(settings.REDIS_URL)
    try:
        return await rebuild_from_settings(settings, read_model(first_page_cache(redis, settings)))
    finally:
        await redis.aclose()
