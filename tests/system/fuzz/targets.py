"""What the fuzzer aims at: each service's own OpenAPI on its api, and the gateway with every
document it serves (API gateway pattern: the public contract is the aggregated one).

Tokens: a member of the fuzzer's own and the seeded admin, each logged in once, so generated
logins (random emails) never touch their failed-login counts.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from gateway.routes import ROUTES, Access
from tests.system.fuzz.harness import Operation, Target
from tests.system.saga.stack import ADMIN_EMAIL, ADMIN_PASSWORD, SERVICES, Stack

GATEWAY_DOCUMENTS = ("gateway", *SERVICES)
_PARAM = re.compile(r"\{[^}/]*\}")
#: Every fifth case of an operation goes without a token (the anonymous runs).
ANONYMOUS_EVERY = 5
FUZZ_PASSWORD = "fuzz-password-123"


def _shape(path: str) -> str:
    return _PARAM.sub("{}", path)


_ACCESS = {(r.method, _shape(r.path)): r.access for r in ROUTES}


def is_admin_route(method: str, path: str) -> bool:
    """Routes only an admin may use (docs/services/*.md, docs/sagas.md): the fault switches and
    creating a board."""
    return path.startswith("/api/admin/") or (method, path) == ("POST", "/api/boards")


def is_withdrawal(method: str, path: str) -> bool:
    """Fuzzing it with the fuzzer's token would withdraw the fuzzer's own member."""
    return (method, path) == ("DELETE", "/api/members/me")


class Tokens:
    """Chooses the ``Authorization`` of each case: admin routes get the admin's token, other
    token routes the fuzzing member's, public routes a token on every other case; every
    ANONYMOUS_EVERY-th case of any operation goes without one."""

    def __init__(self, member: str, admin: str) -> None:
        self.member = member
        self.admin = admin

    def __call__(self, operation: Operation, index: int) -> str | None:
        method, path = operation.method.upper(), operation.path
        if is_withdrawal(method, path) or index % ANONYMOUS_EVERY == ANONYMOUS_EVERY - 1:
            return None
        if is_admin_route(method, path):
            return self.admin
        if _ACCESS.get((method, _shape(path)), Access.TOKEN) is Access.PUBLIC and index % 2:
            return None
        return self.member


async def log_in(http: httpx.AsyncClient, member_url: str, email: str, password: str) -> str:
    response = await http.post(
        f"{member_url}/api/auth/login", json={"email": email, "password": password}
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


async def fuzz_tokens(stack: Stack) -> Tokens:
    """Signs up the fuzzing member and logs it and the admin in, once each."""
    member_url = stack.url("member")
    suffix = uuid.uuid4().hex[:10]
    email = f"fuzz{suffix}@example.com"
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{member_url}/api/members",
            json={"email": email, "password": FUZZ_PASSWORD, "nickname": f"fz{suffix}"},
        )
        created.raise_for_status()
        member = await log_in(http, member_url, email, FUZZ_PASSWORD)
        admin = await log_in(http, member_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    return Tokens(member, admin)


async def _document(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(url)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


async def fuzz_targets(stack: Stack, tokens: Tokens) -> list[Target]:
    """One target per service (its api and its own ``/openapi.json``) and the gateway (every
    ``/openapi/<name>.json`` it serves, sent to the gateway)."""
    targets: list[Target] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for service in SERVICES:
            document = await _document(http, f"{stack.url(service)}/openapi.json")
            targets.append(Target(service, stack.url(service), [document], tokens))
        gateway = stack.url("gateway")
        documents = [
            await _document(http, f"{gateway}/openapi/{name}.json") for name in GATEWAY_DOCUMENTS
        ]
        targets.append(Target("gateway", gateway, documents, tokens))
    return targets
