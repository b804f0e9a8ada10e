"""API dependencies: ``Annotated`` aliases for what routes need, taken from the app's composition root."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chassis.problems import TooManyRequests
from chassis.ratelimit import Limiter
from member.adapters.login_throttle import RedisLoginThrottle, RedisPasswordCheckThrottle
from member.adapters.passwords import Argon2Passwords
from member.adapters.tokens import JwtIssuer
from member.config import Settings
from member.service_layer.unit_of_work import MemberUnitOfWork


async def get_uow(request: Request) -> MemberUnitOfWork:
    uow: MemberUnitOfWork = request.app.state.uow_factory()
    return uow


async def get_passwords(request: Request) -> Argon2Passwords:
    passwords: Argon2Passwords = request.app.state.passwords
    return passwords


async def get_tokens(request: Request) -> JwtIssuer:
    tokens: JwtIssuer = request.app.state.tokens
    return tokens


async def get_throttle(request: Request) -> RedisLoginThrottle:
    throttle: RedisLoginThrottle = request.app.state.login_throttle
    return throttle


async def get_password_check_throttle(request: Request) -> RedisPasswordCheckThrottle:
    throttle: RedisPasswordCheckThrottle = request.app.state.password_check_throttle
    return throttle


async def _per_address(request: Request, operation: str, per_minute: int) -> None:
    """Count one request of ``operation`` for the client address (``request.client.host``, which
    uvicorn takes from ``X-Forwarded-For`` of a trusted proxy only); past ``per_minute`` it is
    a 429 problem with ``Retry-After``. ``per_minute`` 0 disables the limit. The count is taken
    before the work, atomically (``chassis.ratelimit.hit``)."""
    if per_minute <= 0:
        return
    limiter: Limiter = request.app.state.address_limiter
    address = request.client.host if request.client else "unknown"
    decision = await limiter.hit(f"{operation}-per-address:{address}", per_minute, 60)
    if not decision.allowed:
        raise TooManyRequests(
            f"more than {per_minute} {operation} requests per minute from this address",
            decision.retry_after,
        )


async def limit_login_per_address(request: Request) -> None:
    await _per_address(request, "login", (await get_settings(request)).LOGIN_PER_ADDRESS_PER_MINUTE)


async def limit_sign_up_per_address(request: Request) -> None:
    await _per_address(
        request, "sign-up", (await get_settings(request)).SIGN_UP_PER_ADDRESS_PER_MINUTE
    )


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Uow = Annotated[MemberUnitOfWork, Depends(get_uow)]
Passwords = Annotated[Argon2Passwords, Depends(get_passwords)]
Tokens = Annotated[JwtIssuer, Depends(get_tokens)]
Throttle = Annotated[RedisLoginThrottle, Depends(get_throttle)]
PasswordCheckThrottle = Annotated[RedisPasswordCheckThrottle, Depends(get_password_check_throttle)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
