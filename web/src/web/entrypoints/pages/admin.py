"""Admin fault-injection screen: make a saga participant's command fail or stall, then watch the saga compensate (a trainee's lever on the saga pattern)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.adapters.gateway_client import ApiError
from web.entrypoints.deps import Api, CsrfForm, Member
from web.entrypoints.rendering import Pages, Renderer
from web.forms import FormErrors, from_api_error, whole_number
from web.i18n import N_

router = APIRouter()

MODES = ("off", "fail", "delay")
#: Longer than the saga's step timeout shows a timeout; shorter, a slow but successful step.
DEFAULT_DELAY_MS = 3000


async def _render(
    request: Request,
    renderer: Pages,
    api: Api,
    *,
    errors: FormErrors | None = None,
    applied: str | None = None,
    status: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "errors": errors or FormErrors(),
        "applied": applied,
        "modes": MODES,
        "default_delay_ms": DEFAULT_DELAY_MS,
    }
    try:
        listed = await api.get("/api/admin/faults")
    except ApiError as exc:
        # 404: the saga service runs without FAULT_INJECTION; 403: not an admin after all.
        context["unavailable"] = exc.status
        return renderer.render(request, "admin_faults.html", context, status=status)
    active = {(f["service"], f["command"]): f for f in listed.get("items", [])}
    known = {
        f"{service}/{command}"
        for service, commands in listed.get("commands", {}).items()
        for command in commands
    }
    # ``?applied=`` is the redirect's own, but anyone can write a link: only a command the
    # saga service lists is named, never text from the URL
    context["applied"] = applied if applied in known else None
    shown = context["errors"]
    stray = [text for key, text in shown.fields.items() if key not in known]
    if stray and not shown.message:
        # a refusal for a row the page does not have (a hand-made request): above the table
        context["errors"] = FormErrors(stray[0], shown.fields, status=shown.status)
    context["services"] = [
        {
            "name": service,
            "commands": [
                {"name": command, "fault": active.get((service, command))} for command in commands
            ],
        }
        for service, commands in sorted(listed.get("commands", {}).items())
    ]
    return renderer.render(request, "admin_faults.html", context, status=status)


@router.get("/admin/faults", response_class=HTMLResponse)
async def faults_page(
    request: Request,
    member: Member,
    api: Api,
    renderer: Renderer,
    applied: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Every participant command with its flag; admins only (the API decides, too)."""
    if not member.is_admin:
        return renderer.render(request, "error.html", {"status": 403}, status=403)
    return await _render(request, renderer, api, applied=applied)


@router.post("/admin/faults")
async def set_fault(
    request: Request,
    member: Member,
    form: CsrfForm,
    api: Api,
    renderer: Renderer,
) -> Response:
    """Set one flag (``service``, ``command``, ``mode``, ``delay_ms``), then back to the list."""
    if not member.is_admin:
        return renderer.render(request, "error.html", {"status": 403}, status=403)
    service, command = form.get("service", ""), form.get("command", "")
    mode = form.get("mode", "off")
    body: dict[str, Any] = {"mode": mode}
    if mode == "delay":
        delay_ms = whole_number(form.get("delay_ms"))
        if delay_ms is None or delay_ms < 0:
            errors = FormErrors(
                "",
                {
                    f"{service}/{command}": renderer.gettext(
                        request, N_("Give the delay in milliseconds.")
                    )
                },
                status=422,
            )
            return await _render(request, renderer, api, errors=errors, status=422)
        body["delay_ms"] = delay_ms
    try:
        await api.call(
            "PUT",
            f"/api/admin/faults/{quote(service, safe='')}/{quote(command, safe='')}",
            json=body,
        )
    except ApiError as exc:
        errors = from_api_error(exc, renderer.translator(request))
        # one form per row: the refusal is said on the row (once), not above the table too
        row_message = next(iter(errors.fields.values()), "") if errors.fields else errors.message
        errors = FormErrors("", {f"{service}/{command}": row_message}, status=errors.status)
        return await _render(request, renderer, api, errors=errors, status=errors.status)
    target = f"/admin/faults?applied={quote(f'{service}/{command}', safe='')}"
    return RedirectResponse(target, status_code=303)
