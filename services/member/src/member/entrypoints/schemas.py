"""API schemas: request and response bodies of the member API (the public contract, docs/services/member.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from member.domain.model import (
    EMAIL_MAX_LENGTH,
    NICKNAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    Role,
    Status,
)
from member.domain.sessions import REFRESH_TOKEN_MAX_LENGTH
from member.service_layer.handlers import BEARER

# Bounds checked by the schema so oversized input is refused before any work; the domain
# applies the full rules (format, trimming, reserved names).
Email = Annotated[str, StringConstraints(min_length=3, max_length=EMAIL_MAX_LENGTH)]
Password = Annotated[
    str, StringConstraints(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
]
LoginPassword = Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
# Room for padding and for a decomposed (NFD) spelling, up to 4 code points per character
# (UAX #15 §9): a 20-syllable Hangul nickname from a macOS keyboard is 40-60 code points.
Nickname = Annotated[str, StringConstraints(min_length=1, max_length=NICKNAME_MAX_LENGTH * 4 + 20)]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=REFRESH_TOKEN_MAX_LENGTH)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberCreate(_Request):
    email: Email
    password: Password
    nickname: Nickname


class MemberUpdate(_Request):
    nickname: Nickname | None = None
    password: Password | None = None
    current_password: LoginPassword | None = None


class MemberPublic(BaseModel):
    id: uuid.UUID
    email: str
    nickname: str
    role: Role
    status: Status
    points: int
    created_at: dt.datetime

    @classmethod
    def from_view(cls, row: dict[str, Any]) -> MemberPublic:
        return cls.model_validate(row)


class ActivityPublic(BaseModel):
    posts: int
    comments: int
    questions: int
    answers: int
    accepted_answers: int
    points: int


class LoginRequest(_Request):
    email: Email
    password: LoginPassword


class RefreshRequest(_Request):
    refresh_token: OpaqueToken


class LogoutRequest(_Request):
    refresh_token: OpaqueToken


class TokenPairPublic(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = BEARER
    expires_in: int = Field(description="seconds until the access token expires")


class JwksPublic(BaseModel):
    keys: list[dict[str, Any]]
