"""Composition root: each qna process (api, worker, the read-model rebuild) wired from settings; clients start in the lifespan."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.app import create_app
from chassis.auth import install_verifier
from chassis.lifecycle import Runtime
from chassis.read_model import ReadModel, RebuildReport, rebuild_from_settings
from chassis.resources import attach
from chassis.saga import SagaParticipant
from qna.config import Settings
from qna.entrypoints import api, internal_api
from qna.entrypoints.errors import install_domain_error_handlers
from qna.entrypoints.event_handlers import member_events_handler, read_model_handler
from qna.entrypoints.saga_handlers import HANDLERS
from qna.service_layer.projector import READ_MODEL
from qna.service_layer.unit_of_work import QnaUnitOfWork


def uow_factory(sessions: async_sessionmaker[AsyncSession]) -> Callable[[], QnaUnitOfWork]:
    def make() -> QnaUnitOfWork:
        return QnaUnitOfWork(sessions)

    return make


def build_api(settings: Settings) -> FastAPI:
    """The api process: HTTP routes over PostgreSQL; events leave through the outbox."""
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=True, redis=False, kafka=False)
    app = create_app(
        settings,
        runtime,
        title="qna",
        description="Q&A service (Q&A관리): questions, answers, comments and the question list.",
        routers=[api.router, internal_api.router],
    )
    install_domain_error_handlers(app)
    assert res.verifier is not None
    install_verifier(app, res.verifier)
    app.state.sessions = res.sessions
    app.state.uow_factory = uow_factory(res.sessions)
    return app


def build_worker(settings: Settings) -> FastAPI:
    """The worker process: outbox relay, author copy, read-model projector (and its checkpoint
    report) and saga participant."""
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=True, redis=True, kafka=True, verifier=False)
    make_uow = uow_factory(res.sessions)
    res.add_outbox_relay()
    res.add_consumer("qna-authors", ["member.events"], member_events_handler(make_uow))
    model = read_model(settings)
    res.add_consumer(
        model.consumer, list(model.topics), read_model_handler(make_uow, settings.SERVICE_NAME)
    )
    res.add_saga_participant(SagaParticipant("qna", make_uow, HANDLERS, res.faults()))
    res.add_checkpoint_report()
    app = create_app(settings, runtime, title="qna worker", docs=False)
    app.state.uow_factory = make_uow
    app.state.resources = res
    return app


def read_model(settings: Settings) -> ReadModel:
    """The ``question_summaries`` read model (``service_layer/projector.py``). It needs nothing
    from the settings and no rebuild hooks: it reads only its two topics, unlike board's, whose
    rebuild copies write-side view counts and invalidates its Redis cache."""
    return READ_MODEL


async def rebuild_read_model(settings: Settings) -> RebuildReport:
    """The admin process ``qna rebuild-read-model``: replay ``qna.events`` and ``member.events``
    from the beginning into fresh tables beside the running worker and swap them in
    (``chassis.read_model.rebuild``). Raises ``chassis.read_model.RebuildRefused`` while another
    rebuild runs (the live read model is kept)."""
    return await rebuild_from_settings(settings, read_model(settings))
