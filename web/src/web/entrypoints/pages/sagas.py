"""Live saga view: a saga's steps as they run (the page, and the fragment its script polls), for withdrawal and answer acceptance.

The browser holds no token, so it cannot ask ``GET /api/sagas/{id}`` itself: web serves
``GET /sagas/{id}`` (the page; without scripting it reloads itself every 2 s while the saga
runs) and ``GET /sagas/{id}/steps`` (the fragment ``static/saga.js`` fetches every
``SAGA_POLL_SECONDS`` and swaps in until a terminal status).

A completed withdrawal is seen as a 401: member puts the member's tokens on the deny-list
and revokes the refresh tokens (docs/sagas.md), so the poll's call is refused and so is the
refresh. For the session that started this withdrawal (``withdrawal_saga_id``) that refusal
*is* the COMPLETED outcome: the session is deleted and the page says the member is logged out.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from web.adapters.gateway_client import ApiError
from web.entrypoints.deps import Api, Member, set_session_cookie, store
from web.entrypoints.pages.home import safe_next
from web.entrypoints.rendering import Pages, Renderer
from web.i18n import N_
from web.sessions import Session, SessionEnded, SignInUnavailable

router = APIRouter()

WITHDRAWAL = "member-withdrawal"
TERMINAL = frozenset({"COMPLETED", "COMPENSATED", "FAILED"})
#: The status shown once a withdrawal ended this session (the saga itself is COMPLETED).
WITHDRAWN = "WITHDRAWN"

TITLES = {WITHDRAWAL: N_("Withdrawal"), "answer-acceptance": N_("Answer acceptance")}
SAGA_STATUS = {
    "RUNNING": N_("Running"),
    "COMPENSATING": N_("Undoing the steps done so far"),
    "COMPLETED": N_("Completed"),
    "COMPENSATED": N_("Undone: nothing changed"),
    "FAILED": N_("Failed: an operator must look at it"),
    WITHDRAWN: N_("Completed"),
}
STEP_STATUS = {
    "PENDING": N_("waiting"),
    "RUNNING": N_("running"),
    "SUCCEEDED": N_("done"),
    "FAILED": N_("refused"),
    "TIMED_OUT": N_("timed out"),
    "COMPENSATING": N_("undoing"),
    "COMPENSATED": N_("undone"),
    "COMPENSATION_FAILED": N_("undo failed"),
}
STEP_NAMES = {
    "start-withdrawal": N_("member: mark the account as being withdrawn"),
    "anonymize-author": N_("board: hide your name on posts and comments"),
    "retire-author": N_("qna: close your open questions"),
    "complete-withdrawal": N_("member: erase personal data (cannot be undone)"),
    "reserve-acceptance": N_("qna: reserve the acceptance"),
    "transfer-points": N_("member: move the bounty's points"),
    "confirm-acceptance": N_("qna: confirm the accepted answer"),
}
STEP_KIND = {
    "compensatable": N_("compensatable"),
    "pivot": N_("pivot"),
    "retriable": N_("retriable"),
}
UNAVAILABLE = N_("The saga's progress cannot be loaded right now; trying again.")


@dataclass
class SagaView:
    """What the page and the fragment show."""

    saga_id: str
    back: str | None
    saga: dict[str, Any] | None = None
    status: str = "RUNNING"
    steps: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL or self.status == WITHDRAWN


async def _withdrawn(request: Request, session: Session) -> None:
    """End the session whose withdrawal completed (and its cookie)."""
    # with Redis down the record stays until its TTL: its tokens are revoked anyway
    with contextlib.suppress(SignInUnavailable):
        await store(request).end(session)
    set_session_cookie(request, None)
    request.state.session = None


async def load_view(
    request: Request, api: Api, member: Session, saga_id: uuid.UUID, back: str | None
) -> SagaView:
    view = SagaView(str(saga_id), safe_next(back, "") or None)
    mine = member.withdrawal_saga_id == view.saga_id
    try:
        saga = await api.get(f"/api/sagas/{view.saga_id}")
    except SessionEnded as ended:
        if ended.session.withdrawal_saga_id != view.saga_id:
            raise
        await _withdrawn(request, ended.session)
        view.status = WITHDRAWN
        return view
    except ApiError as exc:
        if exc.status == 401 and mine:
            await _withdrawn(request, api.session or member)
            view.status = WITHDRAWN
            return view
        if not exc.unavailable:
            raise
        view.message = UNAVAILABLE
        return view
    view.saga = saga if isinstance(saga, dict) else {}
    view.status = str(view.saga.get("status") or "RUNNING")
    view.steps = [s for s in view.saga.get("steps") or [] if isinstance(s, dict)]
    if view.saga.get("type") == WITHDRAWAL and view.status == "COMPLETED" and mine:
        # the deny-list entry may not have reached the gateway yet: the outcome is the same
        await _withdrawn(request, api.session or member)
        view.status = WITHDRAWN
    return view


def _context(renderer: Pages, request: Request, view: SagaView) -> dict[str, Any]:
    saga_type = str((view.saga or {}).get("type") or "")
    if view.status == WITHDRAWN:
        saga_type = WITHDRAWAL
    return {
        "view": view,
        "saga_type": saga_type,
        # translated here: data (an unknown status) never goes through the template's _()
        "title": renderer.gettext(request, TITLES.get(saga_type, N_("Saga"))),
        "status_text": renderer.labels(request, SAGA_STATUS).get(view.status, view.status),
        "message": renderer.gettext(request, view.message) if view.message else "",
        "step_status": renderer.labels(request, STEP_STATUS),
        "step_names": renderer.labels(request, STEP_NAMES),
        "step_kind": renderer.labels(request, STEP_KIND),
        "withdrawn": view.status == WITHDRAWN,
        "poll_url": f"/sagas/{view.saga_id}/steps"
        + (f"?back={quote(view.back, safe='/')}" if view.back else ""),
        "poll_ms": int(renderer.settings.SAGA_POLL_SECONDS * 1000),
    }


@router.get("/sagas/{saga_id}", response_class=HTMLResponse)
async def saga_page(
    request: Request,
    saga_id: uuid.UUID,
    member: Member,
    api: Api,
    renderer: Renderer,
    back: Annotated[str | None, Query(max_length=2048)] = None,
) -> HTMLResponse:
    view = await load_view(request, api, member, saga_id, back)
    return renderer.render(request, "saga.html", _context(renderer, request, view))


@router.get("/sagas/{saga_id}/steps", response_class=HTMLResponse)
async def saga_steps(
    request: Request,
    saga_id: uuid.UUID,
    member: Member,
    api: Api,
    renderer: Renderer,
    back: Annotated[str | None, Query(max_length=2048)] = None,
) -> HTMLResponse:
    """The steps fragment alone (``_saga_steps.html``), for the page's script."""
    view = await load_view(request, api, member, saga_id, back)
    response = renderer.render(request, "_saga_steps.html", _context(renderer, request, view))
    response.headers["Cache-Control"] = "no-store"
    return response
