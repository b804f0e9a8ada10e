"""API dependencies: ``Annotated`` aliases for what routes need, taken from the app's composition root."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from member.adapters.login_throttle import RedisLoginThrottle
from member.adapters.passwords import Argon2Passwords
from member.adapters.tokens import JwtIssuer
from member.config import Settings
from member.service_layer.unit_of_work import MemberUnitOfWork


def get_uow(request: Request) -> MemberUnitOfWork:
    uow: MemberUnitOfWork = request.app.state.uow_factory()
    return uow


def get_passwords(request: Request) -> Argon2Passwords:
    passwords: Argon2Passwords = request.app.state.passwords
    return passwords


def get_tokens(request: Request) -> JwtIssuer:
    tokens: JwtIssuer = request.app.state.tokens
    return tokens


def get_throttle(request: Request) -> RedisLoginThrottle:
    throttle: RedisLoginThrottle = request.app.state.login_throttle
    return throttle


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Uow = Annotated[MemberUnitOfWork, Depends(get_uow)]
Passwords = Annotated[Argon2Passwords, Depends(get_passwords)]
Tokens = Annotated[JwtIssuer, Depends(get_tokens)]
Throttle = Annotated[RedisLoginThrottle, Depends(get_throttle)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
