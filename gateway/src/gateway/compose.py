"""API composition: ``GET /api/me/dashboard`` gathers four upstream reads in parallel and degrades.

Each part has its own short deadline. A part that fails, times out or answers nonsense is
``null`` and named in ``degraded``; the answer is still 200, because a dashboard with three
parts out of four is more useful than an error page.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from chassis.logging import get_logger
from chassis.openapi import problems
from gateway.pool import UpstreamReply
from gateway.proxy import Proxy, admit, client_ip_of, request_id_of
from gateway.routes import BOARD, MEMBER, QNA, TOKEN

log = get_logger(__name__)

#: Fetch ``target`` (path and query) from the named upstream within the part's deadline.
Fetch = Callable[[str, str], Awaitable[UpstreamReply]]


@dataclass(frozen=True)
class Part:
    name: str
    upstream: str
    target: str  # ``{member_id}`` is filled in
    page: bool = False  # a list page: the part is its ``items``


PARTS = (
    Part("member", MEMBER, "/api/members/me"),
    Part("activity", MEMBER, "/api/members/me/activity"),
    Part("recent_posts", BOARD, "/api/posts?author_id={member_id}&size=5", page=True),
    Part("recent_questions", QNA, "/api/questions?author_id={member_id}&size=5", page=True),
)


class DashboardPublic(BaseModel):
    member: dict[str, Any] | None
    activity: dict[str, Any] | None
    recent_posts: list[Any] | None
    recent_questions: list[Any] | None
    degraded: list[str]


async def _load(fetch: Fetch, part: Part, member_id: uuid.UUID) -> Any:
    """The part's content, or None when it cannot be had."""
    try:
        reply = await fetch(part.upstream, part.target.format(member_id=member_id))
        if reply.status != 200:
            raise ValueError(f"answered {reply.status}")
        data = json.loads(reply.body)
        if part.page:
            data = data["items"] if isinstance(data, dict) else None
            if not isinstance(data, list):
                raise ValueError("not a page of items")
        elif not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except Exception as exc:  # any failure of one part degrades that part, never the whole answer
        log.warning("dashboard.part_degraded", part=part.name, error=f"{type(exc).__name__}: {exc}")
        return None


async def compose_dashboard(fetch: Fetch, member_id: uuid.UUID) -> DashboardPublic:
    """Load every part concurrently; name the missing ones in ``degraded``."""
    results = await asyncio.gather(*(_load(fetch, part, member_id) for part in PARTS))
    parts = {part.name: result for part, result in zip(PARTS, results, strict=True)}
    degraded = [name for name, result in parts.items() if result is None]
    return DashboardPublic(**parts, degraded=degraded)


router = APIRouter(tags=["gateway"])
_bearer = HTTPBearer(auto_error=False)  # only so the OpenAPI document shows the lock


@router.get(
    "/api/me/dashboard",
    response_model=DashboardPublic,
    responses=problems(429, 503),  # the edge's rate limit; the token cannot be checked
)
async def dashboard(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> DashboardPublic:
    """My member record, activity, 5 latest posts and 5 latest questions, in one call."""
    proxy: Proxy = request.app.state.proxy
    authorization = request.headers.get("authorization")
    client_ip = client_ip_of(request.scope)
    principal = await admit(proxy.auth, proxy.limiter, TOKEN, authorization, client_ip)
    assert principal is not None
    headers = [
        (b"authorization", (authorization or "").encode("latin-1")),
        (b"accept", b"application/json"),
        (b"x-request-id", request_id_of(request.scope).encode()),
        (b"x-forwarded-for", client_ip.encode()),
    ]
    timeout = proxy.settings.DASHBOARD_TIMEOUT_SECONDS

    async def fetch(upstream: str, target: str) -> UpstreamReply:
        route = f"GET /api/me/dashboard ({target.partition('?')[0]})"
        return await proxy.upstreams.call(
            proxy.upstreams[upstream], "GET", target, headers, b"", timeout=timeout, route=route
        )

    return await compose_dashboard(fetch, principal.id)
