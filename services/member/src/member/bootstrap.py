"""Composition root: each process (api, worker) wired from settings; clients start in the lifespan."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.app import create_app
from chassis.auth import JwksVerifier, install_verifier
from chassis.lifecycle import Runtime
from chassis.ratelimit import Limiter
from chassis.resources import attach
from chassis.saga import SagaParticipant, command_topic
from chassis.token_denylist import TokenDenyList, entry_ttl
from member.adapters.login_throttle import RedisLoginThrottle, RedisPasswordCheckThrottle
from member.adapters.passwords import Argon2Passwords
from member.adapters.tokens import JwtIssuer, load_private_key, previous_jwks
from member.config import Settings
from member.entrypoints import api
from member.entrypoints.errors import install_error_mapping
from member.entrypoints.event_handlers import activity_projector
from member.entrypoints.saga_handlers import build_handlers
from member.service_layer.activity import CONSUMER, SOURCE_TOPICS
from member.service_layer.unit_of_work import MemberUnitOfWork


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
    res.add_consumer(
        CONSUMER, list(SOURCE_TOPICS), activity_projector(make_uow, settings.SERVICE_NAME)
    )
    deny_list = TokenDenyList(res.cache, ttl_seconds=entry_ttl(settings.ACCESS_TOKEN_TTL_SECONDS))
    participant = SagaParticipant("member", make_uow, build_handlers(deny_list), res.faults())
    res.add_consumer(
        "member-saga",
        [command_topic("member")],
        participant.handle,
        on_dead_letter=participant.on_dead_letter,
    )
    return create_app(settings, runtime, title="member worker", docs=False)


def uow_factory(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> Callable[[], MemberUnitOfWork]:
    def make() -> MemberUnitOfWork:
        return MemberUnitOfWork(sessions, settings.SERVICE_NAME)

    return make
