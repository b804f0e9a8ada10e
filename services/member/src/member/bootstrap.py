"""Composition root: each process (api, worker, the admin processes) wired from settings; clients start in the lifespan."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.app import create_app
from chassis.auth import JwksVerifier, install_verifier
from chassis.db import create_engine, create_session_factory
from chassis.lifecycle import Runtime
from chassis.logging import get_logger
from chassis.ratelimit import Limiter
from chassis.read_model import ReadModel, RebuildReport, rebuild_from_settings
from chassis.resources import attach
from chassis.saga import SagaParticipant
from chassis.token_denylist import TokenDenyList, entry_ttl
from member.adapters.login_throttle import RedisLoginThrottle, RedisPasswordCheckThrottle
from member.adapters.passwords import Argon2Passwords
from member.adapters.tokens import JwtIssuer, load_private_key, previous_jwks
from member.config import Settings
from member.entrypoints import api
from member.entrypoints.errors import install_error_mapping
from member.entrypoints.event_handlers import activity_projector
from member.entrypoints.saga_handlers import build_handlers
from member.service_layer import handlers
from member.service_layer.projector import READ_MODEL
from member.service_layer.unit_of_work import MemberUnitOfWork

log = get_logger(__name__)


def build_token_issuer(settings: Settings) -> JwtIssuer:
    """Fails fast (KeyConfigurationError) when no usable signing key is configured."""
    pem = settings.JWT_PRIVATE_KEY.get_secret_value() if settings.JWT_PRIVATE_KEY else None
    return JwtIssuer(
        load_private_key(pem, settings.JWT_PRIVATE_KEY_FILE),
        issuer=settings.JWT_ISSUER,
        audience=settings.JWT_AUDIENCE,
        ttl_seconds=settings.ACCESS_TOKEN_TTL_SECONDS,
        key_id=settings.JWT_KEY_ID,
        previous=previous_jwks(settings.JWT_PREVIOUS_PUBLIC_KEYS),
    )


def build_throttle(
    kind: type[RedisLoginThrottle], redis: Redis, settings: Settings
) -> RedisLoginThrottle:
    """A password-check throttle (login or ``current_password``) with the shared settings."""
    return kind(
        redis,
        max_failures=settings.LOGIN_MAX_FAILURES,
        window_seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS,
        service=settings.SERVICE_NAME,
        key_prefix=settings.REDIS_KEY_PREFIX,
    )


def build_api(settings: Settings) -> FastAPI:
    """The api process: HTTP routes over PostgreSQL and Redis; it signs and verifies tokens."""
    tokens = build_token_issuer(settings)
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=True, redis=True, kafka=False, verifier=False)
    app = create_app(
        settings,
        runtime,
        title="member",
        description="Member service (회원관리): sign-up, login, profile, activity, JWKS.",
        routers=[api.router],
    )
    install_error_mapping(app)
    # Its own tokens are verified against its own JWKS without an HTTP call to itself.
    install_verifier(app, JwksVerifier.from_settings(settings, fetch=tokens.fetch_jwks))
    app.state.tokens = tokens
    app.state.passwords = Argon2Passwords()
    app.state.login_throttle = build_throttle(RedisLoginThrottle, res.cache, settings)
    app.state.password_check_throttle = build_throttle(
        RedisPasswordCheckThrottle, res.cache, settings
    )
    app.state.address_limiter = Limiter(
        res.cache,
        service=settings.SERVICE_NAME,
        operation="address_limit",
        key_prefix=settings.REDIS_KEY_PREFIX,
    )
    app.state.uow_factory = uow_factory(res.sessions, settings)
    return app


def build_worker(settings: Settings) -> FastAPI:
    """The worker process: outbox relay, the activity projection and the saga participant."""
    runtime = Runtime(settings.SERVICE_NAME)
    res = attach(settings, runtime, database=True, redis=True, kafka=True, verifier=False)
    make_uow = uow_factory(res.sessions, settings)
    res.add_outbox_relay()
    model = read_model(settings)
    res.add_consumer(
        model.consumer, list(model.topics), activity_projector(make_uow, settings.SERVICE_NAME)
    )
    deny_list = TokenDenyList(res.cache, ttl_seconds=entry_ttl(settings.ACCESS_TOKEN_TTL_SECONDS))
    res.add_saga_participant(
        SagaParticipant("member", make_uow, build_handlers(deny_list), res.faults())
    )
    res.add_checkpoint_report()
    return create_app(settings, runtime, title="member worker", docs=False)


def read_model(settings: Settings) -> ReadModel:
    """The ``member_activity`` read model (``service_layer/projector.py``); it needs nothing from
    the settings, unlike board's, whose rebuild hooks use its Redis cache."""
    return READ_MODEL


async def rebuild_read_model(settings: Settings) -> RebuildReport:
    """The admin process ``member rebuild-read-model``: replay ``board.events``, ``qna.events``
    and ``member.events`` from the beginning into fresh tables and swap them in
    (``chassis.read_model.rebuild``; raises ``RebuildRefused`` while another rebuild runs)."""
    return await rebuild_from_settings(settings, read_model(settings))


async def seed_admin(settings: Settings) -> str | None:
    """Run after ``member migrate``: create the ADMIN account from ADMIN_EMAIL/ADMIN_PASSWORD if
    both are set and no account has that email yet (safe to re-run); returns the new id."""
    if not settings.ADMIN_EMAIL or settings.ADMIN_PASSWORD is None:
        log.info("admin.seed_skipped", reason="ADMIN_EMAIL or ADMIN_PASSWORD not set")
        return None
    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    try:
        member_id = await handlers.seed_admin(
            MemberUnitOfWork(create_session_factory(engine), settings.SERVICE_NAME),
            Argon2Passwords(),
            email=settings.ADMIN_EMAIL,
            password=settings.ADMIN_PASSWORD.get_secret_value(),
            nickname=settings.ADMIN_NICKNAME,
        )
    finally:
        await engine.dispose()
    log.info("admin.seeded" if member_id else "admin.exists", email=settings.ADMIN_EMAIL)
    return str(member_id) if member_id else None


def uow_factory(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> Callable[[], MemberUnitOfWork]:
    def make() -> MemberUnitOfWork:
        return MemberUnitOfWork(sessions, settings.SERVICE_NAME)

    return make
