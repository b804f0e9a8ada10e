"""My page: the gateway's composed dashboard (API composition), each part shown or named as degraded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from web.adapters.gateway_client import ApiError
from web.entrypoints.deps import Api, Member
from web.entrypoints.pages.questions import STATUSES
from web.entrypoints.rendering import Renderer
from web.i18n import N_

router = APIRouter()

#: The dashboard's parts (gateway/src/gateway/compose.py) and their headings.
PARTS = {
    "member": N_("Profile"),
    "activity": N_("Activity and points"),
    "recent_posts": N_("My recent posts"),
    "recent_questions": N_("My recent questions"),
}


@router.get("/me", response_class=HTMLResponse)
async def my_page(request: Request, member: Member, api: Api, renderer: Renderer) -> HTMLResponse:
    """``GET /api/me/dashboard``: 200 with ``degraded: [part...]`` when an upstream failed; when
    the whole call fails (gateway down) every part is shown as unavailable, still a 200 page."""
    try:
        found = await api.get("/api/me/dashboard")
        dashboard: dict[str, Any] = found if isinstance(found, dict) else {}
    except ApiError as exc:
        if not exc.unavailable:
            raise
        dashboard = dict.fromkeys(PARTS) | {"degraded": list(PARTS)}
    degraded = [str(part) for part in dashboard.get("degraded") or []]
    return renderer.render(
        request,
        "me.html",
        {
            "dashboard": dashboard,
            "degraded": degraded,
            "degraded_names": [renderer.gettext(request, PARTS[p]) for p in degraded if p in PARTS],
            "parts": renderer.labels(request, PARTS),
            # the same labels as the Q&A list (a raw RESOLVED is not for people)
            "question_statuses": renderer.labels(request, STATUSES),
        },
    )
