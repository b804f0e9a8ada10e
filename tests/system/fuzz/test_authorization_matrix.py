"""Authorization matrix (access control as a table): every public route × every kind of caller
→ the status the public contract promises (docs/CONVENTIONS.md "Status codes"), sent through a real
gateway to the real services.

The routes come from ``gateway.routes.ROUTES``, the front-end fallback (``FRONT_END``: the web
pages) and the gateway's own endpoints, so a route added without a rule in ``EXPECTED`` fails
this test. Each case builds its own resources (a
post, a comment, a question, an answer, a saga) owned by ``member``, so a DELETE in one case
never changes what another sees.

Callers: ``anonymous`` (no token), ``member`` (the owner of the resources in the path),
``other`` (another member), ``admin`` and ``withdrawn`` (a member whose withdrawal saga
completed: docs/sagas.md says every token route refuses that token with 401).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from chassis.swagger_ui import asset_url
from gateway.bootstrap import build_api
from gateway.config import Settings
from gateway.routes import FRONT_END, ROUTES
from saga.entrypoints.api import known_commands
from tests.support.infra import wait_for
from tests.system.saga.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

CALLERS = ("anonymous", "member", "other", "admin", "withdrawn")
PASSWORD = "password-123"

#: (anonymous, member, other, admin, withdrawn) for every route, keyed by its name.
# fmt: off
EXPECTED: dict[str, tuple[int, int, int, int, int]] = {
    # member: sign-up and the session endpoints are public; the body, not the token, decides
    "POST /api/members":                                (201, 201, 201, 201, 201),
    "POST /api/auth/login":                             (200, 200, 200, 200, 200),
    "POST /api/auth/refresh":                           (200, 200, 200, 200, 200),
    "POST /api/auth/logout":                            (204, 204, 204, 204, 204),
    "GET /api/members/me":                              (401, 200, 200, 200, 401),
    "PATCH /api/members/me":                            (401, 200, 200, 200, 401),
    "GET /api/members/me/activity":                     (401, 200, 200, 200, 401),
    "GET /api/members/{member_id}":                     (401, 200, 403, 200, 401),
    # board: reading is public; writing needs a token; editing is for the author or an admin.
    # A withdrawn member's token is refused even where no token is needed (docs/sagas.md: "refused
    # everywhere"): the service would verify its signature and act for the withdrawn member.
    "GET /api/boards":                                  (200, 200, 200, 200, 401),
    "POST /api/boards":                                 (401, 403, 403, 201, 401),
    "GET /api/boards/{board_id}/posts":                 (200, 200, 200, 200, 401),
    "POST /api/boards/{board_id}/posts":                (401, 201, 201, 201, 401),
    "GET /api/posts":                                   (200, 200, 200, 200, 401),
    "GET /api/posts/{post_id}":                         (200, 200, 200, 200, 401),
    "PATCH /api/posts/{post_id}":                       (401, 200, 403, 200, 401),
    "DELETE /api/posts/{post_id}":                      (401, 204, 403, 204, 401),
    "GET /api/posts/{post_id}/comments":                (200, 200, 200, 200, 401),
    "POST /api/posts/{post_id}/comments":               (401, 201, 201, 201, 401),
    "PATCH /api/posts/{post_id}/comments/{comment_id}": (401, 200, 403, 200, 401),
    "DELETE /api/posts/{post_id}/comments/{comment_id}": (401, 204, 403, 204, 401),
    # qna: the same rules; the question in the path is OPEN
    "GET /api/questions":                               (200, 200, 200, 200, 401),
    "POST /api/questions":                              (401, 201, 201, 201, 401),
    "GET /api/questions/{qid}":                         (200, 200, 200, 200, 401),
    "PATCH /api/questions/{qid}":                       (401, 200, 403, 200, 401),
    "DELETE /api/questions/{qid}":                      (401, 204, 403, 204, 401),
    "POST /api/questions/{qid}/answers":                (401, 201, 201, 201, 401),
    "PATCH /api/questions/{qid}/answers/{aid}":         (401, 200, 403, 200, 401),
    "DELETE /api/questions/{qid}/answers/{aid}":        (401, 204, 403, 204, 401),
    "GET /api/questions/{qid}/comments":                (200, 200, 200, 200, 401),
    "POST /api/questions/{qid}/comments":               (401, 201, 201, 201, 401),
    "PATCH /api/questions/{qid}/comments/{cid}":        (401, 200, 403, 200, 401),
    "DELETE /api/questions/{qid}/comments/{cid}":       (401, 204, 403, 204, 401),
    # saga: a withdrawal is one's own (each caller withdraws a fresh account of its kind);
    # only the asker accepts; a saga is visible to its initiator and admins (404 hides it)
    "DELETE /api/members/me":                           (401, 202, 202, 202, 401),
    "POST /api/questions/{qid}/answers/{aid}/accept":   (401, 202, 403, 403, 401),
    "GET /api/sagas/{saga_id}":                         (401, 200, 404, 200, 401),
    "GET /api/admin/faults":                            (401, 403, 403, 200, 401),
    "PUT /api/admin/faults/{service}/{command}":        (401, 403, 403, 200, 401),
    # the gateway's own endpoints
    "GET /api/me/dashboard":                            (401, 200, 200, 200, 401),
    "GET /docs":                                        (200, 200, 200, 200, 200),
    "GET /docs/assets/{name}":                          (200, 200, 200, 200, 200),
    "GET /openapi/{name}.json":                         (200, 200, 200, 200, 200),
    "GET /healthz":                                     (200, 200, 200, 200, 200),
    "GET /readyz":                                      (200, 200, 200, 200, 200),
    "GET /metrics":                                     (200, 200, 200, 200, 200),
    # the web front end: the edge reads no bearer token there (a browser has its session
    # cookie), so every caller is a guest to it; a POST without the session's CSRF token is
    # refused by web before anything else
    "GET /{page...}":                                   (200, 200, 200, 200, 200),
    "POST /{page...}":                                  (403, 403, 403, 403, 403),
}
# fmt: on

#: Cells that fail on today's code because a withdrawn member's token still works: issue 12
#: part 4 (withdrawal closes the account everywhere). Strict: once the fix lands they pass,
#: the xfail fails, and the cell leaves this list.
#: On today's code such a token reads the member's own data (200), is refused by the services
#: with 403 or 409 instead of 401 at the edge, and starts a second withdrawal (202).
WITHDRAWN_TOKEN_STILL_ACCEPTED: set[str] = set()


class WrongStatus(AssertionError):
    """A cell whose status is not the expected one (the only failure a strict xfail accepts)."""


def gateway_endpoints(app: FastAPI) -> list[str]:
    """``METHOD path`` of every endpoint the gateway serves itself (health, metrics, docs,
    composition), found in its app so a new one needs a rule too."""
    found: list[str] = []

    def walk(routes: Any) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.extend(
                    f"{m} {route.path}" for m in sorted((route.methods or set()) - {"HEAD"})
                )
            inner = getattr(route, "routes", None) or getattr(
                getattr(route, "original_router", None), "routes", None
            )
            if inner:
                walk(inner)

    walk(app.routes)
    return found


def _all_routes() -> list[str]:
    pages = [route.name for route in FRONT_END.routes().values()]
    return [r.name for r in ROUTES] + pages + gateway_endpoints(build_api(Settings()))


ROUTE_NAMES = _all_routes()


def test_every_route_has_a_rule() -> None:
    """A route without a row in EXPECTED (or a row without a route) fails CI."""
    assert sorted(set(ROUTE_NAMES) - set(EXPECTED)) == []
    assert sorted(set(EXPECTED) - set(ROUTE_NAMES)) == []


# --- callers and resources ------------------------------------------------------------------


@dataclass
class Account:
    id: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """The accounts every case shares, and the gateway to talk through."""

    http: httpx.AsyncClient
    stack: Stack
    member: Account
    other: Account
    admin: Account
    withdrawn: Account
    free_board: str
    made: list[str] = field(default_factory=list)

    async def ok(self, response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, f"{response.request.url}: {response.text}"
        return response.json() if response.content else None

    async def sign_up(self) -> Account:
        suffix = uuid.uuid4().hex[:10]
        email = f"mx{suffix}@example.com"
        created = await self.ok(
            await self.http.post(
                "/api/members",
                json={"email": email, "password": PASSWORD, "nickname": f"mx{suffix}"},
            ),
            201,
        )
        return Account(created["id"], email, PASSWORD, await self.log_in(email, PASSWORD))

    async def log_in(self, email: str, password: str) -> str:
        body = await self.ok(
            await self.http.post("/api/auth/login", json={"email": email, "password": password}),
            200,
        )
        token: str = body["access_token"]
        return token

    async def refresh_token(self, account: Account) -> str:
        body = await self.ok(
            await self.http.post(
                "/api/auth/login", json={"email": account.email, "password": account.password}
            ),
            200,
        )
        token: str = body["refresh_token"]
        return token

    async def make_admin(self) -> Account:
        """A fresh admin: a sign-up promoted in member's database (`member migrate` seeds one admin
        only), logged in again so its token carries the role."""
        account = await self.sign_up()
        url = self.stack.databases["member"].replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "UPDATE members SET role = 'ADMIN' WHERE id = $1", uuid.UUID(account.id)
            )
        finally:
            await conn.close()
        account.token = await self.log_in(account.email, account.password)
        return account

    async def post(self) -> str:
        body = await self.ok(
            await self.http.post(
                f"/api/boards/{self.free_board}/posts",
                json={"title": "matrix", "content": "a post"},
                headers=self.member.headers,
            ),
            201,
        )
        post_id: str = body["id"]
        return post_id

    async def comment(self, post_id: str) -> str:
        body = await self.ok(
            await self.http.post(
                f"/api/posts/{post_id}/comments",
                json={"content": "a comment"},
                headers=self.member.headers,
            ),
            201,
        )
        comment_id: str = body["id"]
        return comment_id

    async def question(self, asker: Account | None = None) -> str:
        body = await self.ok(
            await self.http.post(
                "/api/questions",
                json={"title": "matrix", "content": "why?", "bounty": 0},
                headers=(asker or self.member).headers,
            ),
            201,
        )
        question_id: str = body["id"]
        return question_id

    async def answer(self, question_id: str, author: Account) -> str:
        body = await self.ok(
            await self.http.post(
                f"/api/questions/{question_id}/answers",
                json={"content": "because"},
                headers=author.headers,
            ),
            201,
        )
        answer_id: str = body["id"]
        return answer_id

    async def question_comment(self, question_id: str) -> str:
        body = await self.ok(
            await self.http.post(
                f"/api/questions/{question_id}/comments",
                json={"content": "a comment"},
                headers=self.member.headers,
            ),
            201,
        )
        comment_id: str = body["id"]
        return comment_id

    async def saga(self) -> str:
        """An acceptance saga the member started on their own question."""
        question_id = await self.question()
        answer_id = await self.answer(question_id, self.other)
        body = await self.ok(
            await self.http.post(
                f"/api/questions/{question_id}/answers/{answer_id}/accept",
                headers=self.member.headers,
            ),
            202,
        )
        saga_id: str = body["saga_id"]
        return saga_id


@dataclass(frozen=True)
class Request:
    path: str
    json: Any = None
    #: Who sends it, when not the column's own account (a withdrawal needs a fresh one).
    caller: Account | None = None


Builder = Callable[[World, str], Awaitable[Request]]


async def _unique(world: World, caller: str) -> Request:
    suffix = uuid.uuid4().hex[:10]
    return Request(
        "/api/members",
        {"email": f"su{suffix}@example.com", "password": PASSWORD, "nickname": f"su{suffix}"},
    )


async def _login(world: World, caller: str) -> Request:
    return Request(
        "/api/auth/login", {"email": world.member.email, "password": world.member.password}
    )


async def _refresh(world: World, caller: str) -> Request:
    return Request("/api/auth/refresh", {"refresh_token": await world.refresh_token(world.member)})


async def _logout(world: World, caller: str) -> Request:
    return Request("/api/auth/logout", {"refresh_token": await world.refresh_token(world.member)})


async def _plain(path: str, body: Any = None) -> Request:
    return Request(path, body)


async def _withdraw(world: World, caller: str) -> Request:
    fresh = {
        "member": world.sign_up,
        "other": world.sign_up,
        "admin": world.make_admin,
    }.get(caller)
    return Request("/api/members/me", caller=await fresh() if fresh else None)


async def _accept(world: World, caller: str) -> Request:
    question_id = await world.question()
    answer_id = await world.answer(question_id, world.other)
    return Request(f"/api/questions/{question_id}/answers/{answer_id}/accept")


async def _post(world: World, caller: str, tail: str = "", body: Any = None) -> Request:
    return Request(f"/api/posts/{await world.post()}{tail}", body)


async def _post_comment(world: World, caller: str, body: Any = None) -> Request:
    post_id = await world.post()
    return Request(f"/api/posts/{post_id}/comments/{await world.comment(post_id)}", body)


async def _question(world: World, caller: str, tail: str = "", body: Any = None) -> Request:
    return Request(f"/api/questions/{await world.question()}{tail}", body)


async def _answer(world: World, caller: str, body: Any = None) -> Request:
    question_id = await world.question(world.other)
    answer_id = await world.answer(question_id, world.member)
    return Request(f"/api/questions/{question_id}/answers/{answer_id}", body)


async def _question_comment(world: World, caller: str, body: Any = None) -> Request:
    question_id = await world.question()
    comment_id = await world.question_comment(question_id)
    return Request(f"/api/questions/{question_id}/comments/{comment_id}", body)


def _fixed(path: str, body: Any = None) -> Builder:
    async def build(world: World, caller: str) -> Request:
        return Request(path, body)

    return build


def _board_path(tail: str, body: Any = None) -> Builder:
    async def build(world: World, caller: str) -> Request:
        return Request(f"/api/boards/{world.free_board}{tail}", body)

    return build


async def _new_board(world: World, caller: str) -> Request:
    slug = f"b{uuid.uuid4().hex[:10]}"
    return Request("/api/boards", {"slug": slug, "name": slug, "description": "matrix"})


async def _member_path(world: World, caller: str) -> Request:
    return Request(f"/api/members/{world.member.id}")


async def _saga_path(world: World, caller: str) -> Request:
    return Request(f"/api/sagas/{await world.saga()}")


async def _fault(world: World, caller: str) -> Request:
    command = known_commands("qna")[0]
    return Request(f"/api/admin/faults/qna/{command}", {"mode": "off"})


def _nickname() -> dict[str, str]:
    return {"nickname": f"nn{uuid.uuid4().hex[:10]}"}


async def _patch_me(world: World, caller: str) -> Request:
    return Request("/api/members/me", _nickname())


EDIT = {"title": "edited", "content": "edited"}
COMMENT = {"content": "edited"}

#: How each route's request is built: its path (with resources made for the case) and body.
BUILD: dict[str, Builder] = {
    "POST /api/members": _unique,
    "POST /api/auth/login": _login,
    "POST /api/auth/refresh": _refresh,
    "POST /api/auth/logout": _logout,
    "GET /api/members/me": _fixed("/api/members/me"),
    "PATCH /api/members/me": _patch_me,
    "GET /api/members/me/activity": _fixed("/api/members/me/activity"),
    "GET /api/members/{member_id}": _member_path,
    "GET /api/boards": _fixed("/api/boards"),
    "POST /api/boards": _new_board,
    "GET /api/boards/{board_id}/posts": _board_path("/posts"),
    "POST /api/boards/{board_id}/posts": _board_path("/posts", {"title": "t", "content": "c"}),
    "GET /api/posts": _fixed("/api/posts"),
    "GET /api/posts/{post_id}": _post,
    "PATCH /api/posts/{post_id}": lambda w, c: _post(w, c, body=EDIT),
    "DELETE /api/posts/{post_id}": _post,
    "GET /api/posts/{post_id}/comments": lambda w, c: _post(w, c, "/comments"),
    "POST /api/posts/{post_id}/comments": lambda w, c: _post(w, c, "/comments", {"content": "c"}),
    "PATCH /api/posts/{post_id}/comments/{comment_id}": lambda w, c: _post_comment(w, c, COMMENT),
    "DELETE /api/posts/{post_id}/comments/{comment_id}": _post_comment,
    "GET /api/questions": _fixed("/api/questions"),
    "POST /api/questions": _fixed("/api/questions", {"title": "q", "content": "c", "bounty": 0}),
    "GET /api/questions/{qid}": _question,
    "PATCH /api/questions/{qid}": lambda w, c: _question(w, c, body=EDIT),
    "DELETE /api/questions/{qid}": _question,
    "POST /api/questions/{qid}/answers": lambda w, c: _question(w, c, "/answers", COMMENT),
    "PATCH /api/questions/{qid}/answers/{aid}": lambda w, c: _answer(w, c, COMMENT),
    "DELETE /api/questions/{qid}/answers/{aid}": _answer,
    "GET /api/questions/{qid}/comments": lambda w, c: _question(w, c, "/comments"),
    "POST /api/questions/{qid}/comments": lambda w, c: _question(w, c, "/comments", COMMENT),
    "PATCH /api/questions/{qid}/comments/{cid}": lambda w, c: _question_comment(w, c, COMMENT),
    "DELETE /api/questions/{qid}/comments/{cid}": _question_comment,
    "DELETE /api/members/me": _withdraw,
    "POST /api/questions/{qid}/answers/{aid}/accept": _accept,
    "GET /api/sagas/{saga_id}": _saga_path,
    "GET /api/admin/faults": _fixed("/api/admin/faults"),
    "PUT /api/admin/faults/{service}/{command}": _fault,
    "GET /api/me/dashboard": _fixed("/api/me/dashboard"),
    "GET /docs": _fixed("/docs"),
    "GET /docs/assets/{name}": _fixed(asset_url("swagger-ui-bundle.js")),
    "GET /openapi/{name}.json": _fixed("/openapi/board.json"),
    "GET /healthz": _fixed("/healthz"),
    "GET /readyz": _fixed("/readyz"),
    "GET /metrics": _fixed("/metrics"),
    "GET /{page...}": _fixed("/"),
    "POST /{page...}": _fixed("/login"),  # a form a guest may post: only the CSRF token is missing
}


@pytest.fixture(scope="module")
async def world(gateway_stack: Stack) -> AsyncIterator[World]:
    """The shared accounts; ``withdrawn`` has a completed withdrawal saga behind it."""
    async with httpx.AsyncClient(base_url=gateway_stack.url("gateway"), timeout=30) as http:
        boards = (await http.get("/api/boards")).json()
        free = next(b["id"] for b in boards if b["slug"] == "free")
        placeholder = Account("", ADMIN_EMAIL, ADMIN_PASSWORD, "")
        world = World(http, gateway_stack, placeholder, placeholder, placeholder, placeholder, free)
        world.admin = Account(
            "", ADMIN_EMAIL, ADMIN_PASSWORD, await world.log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        )
        world.member = await world.sign_up()
        world.other = await world.sign_up()
        world.withdrawn = await world.sign_up()
        started = await world.ok(
            await http.delete("/api/members/me", headers=world.withdrawn.headers), 202
        )

        async def completed() -> bool:
            saga = await world.ok(
                await http.get(f"/api/sagas/{started['saga_id']}", headers=world.admin.headers),
                200,
            )
            assert saga["status"] in ("RUNNING", "COMPLETED"), saga
            return bool(saga["status"] == "COMPLETED")

        await wait_for(completed, timeout=60, interval=0.2, message="withdrawal COMPLETED")
        yield world


def _cases() -> list[Any]:
    cases = []
    for name in ROUTE_NAMES:
        for caller in CALLERS:
            marks = []
            if f"{caller} {name}" in WITHDRAWN_TOKEN_STILL_ACCEPTED:
                marks.append(
                    pytest.mark.xfail(
                        strict=True,
                        raises=WrongStatus,
                        reason="issue 12 part 4: a withdrawn member's token still works",
                    )
                )
            cases.append(pytest.param(name, caller, id=f"{name} [{caller}]", marks=marks))
    return cases


@pytest.mark.parametrize(("route", "caller"), _cases())
async def test_authorization(world: World, route: str, caller: str) -> None:
    """The status of ``route`` for ``caller`` is the one in EXPECTED."""
    assert route in EXPECTED, f"no authorization rule for {route}: add a row to EXPECTED"
    assert route in BUILD, f"no request builder for {route}: add one to BUILD"
    method = route.split(" ", 1)[0]
    request = await BUILD[route](world, caller)
    account = request.caller or {
        "member": world.member,
        "other": world.other,
        "admin": world.admin,
        "withdrawn": world.withdrawn,
    }.get(caller)
    headers = account.headers if account is not None else {}
    response = await world.http.request(method, request.path, json=request.json, headers=headers)
    expected = EXPECTED[route][CALLERS.index(caller)]
    if response.status_code != expected:
        raise WrongStatus(
            f"{caller} {method} {request.path}: expected {expected}, got "
            f"{response.status_code} {response.text[:300]}"
        )
