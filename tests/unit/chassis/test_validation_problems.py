"""A request the schema refuses is a 422 problem whose ``errors[]`` name the field, pydantic's error type and the constraint's numeric bounds, so a client can say "at least 8 characters"."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, StringConstraints

from chassis.problems import install_problem_handlers


class Body(BaseModel):
    password: Annotated[str, StringConstraints(min_length=8, max_length=128)]
    bounty: Annotated[int, Field(ge=0, le=1000)] = 0
    email: str = ""


def _client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things")
    async def things(body: Body) -> dict[str, str]:
        return {}

    return TestClient(app)


def test_bounds_are_in_ctx() -> None:
    answer = _client().post("/things", json={"password": "short", "bounty": 5000})
    assert answer.status_code == 422
    errors = {tuple(e["loc"]): e for e in answer.json()["errors"]}
    assert errors[("body", "password")]["type"] == "string_too_short"
    assert errors[("body", "password")]["ctx"] == {"min_length": 8}
    assert errors[("body", "bounty")]["ctx"] == {"le": 1000}


def test_an_error_without_bounds_has_no_ctx() -> None:
    answer = _client().post("/things", json={"password": "long-enough", "email": 5})
    (error,) = answer.json()["errors"]
    assert error["type"] == "string_type"
    assert "ctx" not in error
