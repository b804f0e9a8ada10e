"""Q&A screens (Q&A 목록, 댓글관리, 답변 채택): server-rendered pages over the qna API and the acceptance saga, each write a form that redirects after it succeeds (post/redirect/get).

The list comes from qna's read model and may lag a write by a moment (``content.pending_item``);
a question with its answers and comments comes from the write model. Accepting an answer starts
the answer-acceptance saga (202): the page hands over to the live saga view.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.adapters.gateway_client import ApiError
from web.entrypoints.deps import Api, CsrfForm, Member, Viewer
from web.entrypoints.pages.content import (
    POLL_LIMIT,
    POLL_SECONDS,
    Page,
    Size,
    error_page,
    flash_saved,
    kept_form,
    may_change,
    not_found,
    page_url,
    parse_id,
    pending_item,
    refused,
    upstream_down,
    without,
)
from web.entrypoints.rendering import Pages, Renderer
from web.forms import (
    FormErrors,
    api_detail,
    from_api_error,
    idempotency_key,
    new_idempotency_key,
    whole_number,
)
from web.i18n import N_

router = APIRouter()

#: The question states (docs/services/qna.md; docs/sagas.md, answer-acceptance) and their labels.
STATUSES: dict[str, str] = {
    "OPEN": N_("Open"),
    "ACCEPTING": N_("Accepting"),
    "RESOLVED": N_("Resolved"),
    "CLOSED": N_("Closed"),
}
#: Limits of qna's API (services/qna: schemas and domain), repeated on the form so a browser
#: stops the typing; the API checks them anyway.
TITLE_MAX = 200
CONTENT_MAX = 20_000
COMMENT_MAX = 2_000
BOUNTY_MAX = 1_000
SEARCH_MAX = 200


def _question_values(form: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """The form as typed (shown again on an error) and the JSON body for the API. A bounty
    that is not a whole number goes as typed, so the API's own 422 names the field."""
    values = {
        "title": form.get("title", ""),
        "content": form.get("content", ""),
        "bounty": form.get("bounty", "").strip(),
    }
    body: dict[str, Any] = {"title": values["title"], "content": values["content"]}
    if values["bounty"]:
        number = whole_number(values["bounty"])
        body["bounty"] = values["bounty"] if number is None else number
    return values, body


# --- the list -----------------------------------------------------------------------------------


@router.get("/questions", response_class=HTMLResponse)
async def question_list(
    request: Request,
    renderer: Renderer,
    viewer: Viewer,
    api: Api,
    status: Annotated[str | None, Query(max_length=20)] = None,
    page: Page = 1,
    size: Size = 20,
    q: Annotated[str | None, Query(max_length=SEARCH_MAX)] = None,
    created: Annotated[str | None, Query(max_length=64)] = None,
    deleted: Annotated[str | None, Query(max_length=64)] = None,
    poll: Annotated[int, Query(ge=0, le=1000)] = 0,
    fragment: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    """Q&A 목록: ``status`` (one of ``STATUSES``; anything else means all), ``page``, ``size``
    and the search ``q`` go to ``GET /api/questions`` as given. ``fragment=1`` answers the
    list alone (app.js asks it again while a just-asked question is not listed yet)."""
    chosen = status if status in STATUSES else None
    search = (q or "").strip() or None
    context: dict[str, Any] = {
        "questions": [],
        "total": 0,
        "page": page,
        "size": size,
        "q": search or "",
        "status": chosen or "",
        "statuses": renderer.labels(request, STATUSES),
        "pending": None,
        "unavailable": False,
        "poll_limit": POLL_LIMIT,
        "poll_seconds": POLL_SECONDS,
        "page_url": page_url(request),
    }
    template = "_questions_list.html" if fragment else "questions.html"
    try:
        listing = await api.get(
            "/api/questions", params={"status": chosen, "page": page, "size": size, "q": search}
        )
    except ApiError as error:
        if not upstream_down(error):
            return error_page(renderer, request, error)
        context["unavailable"] = True
        return renderer.render(request, template, context)
    items: list[dict[str, Any]] = listing.get("items", [])
    context.update(
        questions=without(items, deleted),
        total=listing.get("total", 0),
        pending=pending_item(
            request,
            created,
            items,
            poll=poll,
            # a new question is OPEN and newest: it belongs on the first page of these lists
            shown_here=page == 1 and search is None and chosen in (None, "OPEN"),
        ),
    )
    return renderer.render(request, template, context)


# --- ask ----------------------------------------------------------------------------------------


def _question_form(
    renderer: Pages,
    request: Request,
    *,
    values: dict[str, str],
    key: str | None,
    question: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
) -> HTMLResponse:
    errors = errors or FormErrors()
    return renderer.render(
        request,
        "question_form.html",
        {
            "question": question,
            "values": values,
            "errors": errors,
            "idempotency_key": key,
            "limits": {"title": TITLE_MAX, "content": CONTENT_MAX, "bounty": BOUNTY_MAX},
        },
        status=errors.status,
    )


@router.get("/questions/ask", response_class=HTMLResponse)
async def ask_form(request: Request, renderer: Renderer, member: Member) -> Response:
    """The empty question form (bounty 0), with a fresh Idempotency-Key."""
    return _question_form(renderer, request, values={"bounty": "0"}, key=new_idempotency_key())


@router.post("/questions/ask", response_class=HTMLResponse)
async def ask(
    request: Request, renderer: Renderer, member: Member, form: CsrfForm, api: Api
) -> Response:
    """``POST /api/questions`` with the form's Idempotency-Key; 303 to the new question. The
    bounty is checked against the balance only at acceptance (docs/sagas.md: the
    transfer-points step refuses a short balance)."""
    values, body = _question_values(form)
    key = idempotency_key(form)
    try:
        created = await api.call("POST", "/api/questions", json=body, idempotency_key=key)
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        return _question_form(renderer, request, values=values, key=key, errors=errors)
    await flash_saved(request)
    return RedirectResponse(f"/questions/{created.body['id']}?created=1", status_code=303)


# --- a question ---------------------------------------------------------------------------------


@router.get("/questions/{question_id}", response_class=HTMLResponse)
async def question_detail(
    request: Request,
    question_id: str,
    renderer: Renderer,
    viewer: Viewer,
    api: Api,
    edit_answer: Annotated[str | None, Query(max_length=64)] = None,
    edit_comment: Annotated[str | None, Query(max_length=64)] = None,
    created: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    """A question with its answers and comments. ``edit_answer=<id>`` / ``edit_comment=<id>``
    open that item's edit form in place."""
    qid = parse_id(question_id)
    if qid is None:
        return not_found(renderer, request)
    return await _question_page(
        renderer,
        request,
        api,
        viewer,
        qid,
        editing_answer=parse_id(edit_answer),
        editing_comment=parse_id(edit_comment),
        just_created=bool(created),
    )


def _permissions(viewer: Any, question: dict[str, Any]) -> dict[str, Any]:
    """What the page offers, by qna's rules (docs/services/qna.md; the API enforces them):
    a question is changed by its author or an admin while OPEN; an answer by its author or an
    admin unless accepted or while ACCEPTING; only the asker accepts, an answer of another
    member who has not withdrawn, while OPEN."""
    status = question.get("status")
    signed_in = viewer is not None and viewer.signed_in
    asker = (question.get("author") or {}).get("id")
    is_asker = signed_in and asker is not None and str(asker) == viewer.member_id

    def answer_changeable(answer: dict[str, Any]) -> bool:
        return (
            may_change(viewer, answer.get("author"))
            and not answer.get("accepted")
            and status != "ACCEPTING"
        )

    def acceptable(answer: dict[str, Any]) -> bool:
        author = (answer.get("author") or {}).get("id")
        return bool(is_asker and status == "OPEN" and author and str(author) != viewer.member_id)

    return {
        "can_change": may_change(viewer, question.get("author")) and status == "OPEN",
        "can_answer": signed_in and status == "OPEN",
        "can_comment": signed_in,
        "answer_changeable": answer_changeable,
        "acceptable": acceptable,
        "comment_changeable": lambda comment: may_change(viewer, comment.get("author")),
    }


async def _question_page(
    renderer: Pages,
    request: Request,
    api: Any,
    viewer: Any,
    question_id: str,
    *,
    editing_answer: str | None = None,
    editing_comment: str | None = None,
    just_created: bool = False,
    answer_values: dict[str, str] | None = None,
    answer_errors: FormErrors | None = None,
    answer_key: str | None = None,
    comment_values: dict[str, str] | None = None,
    comment_errors: FormErrors | None = None,
    comment_key: str | None = None,
    edit_values: dict[str, str] | None = None,
    edit_errors: FormErrors | None = None,
    action_error: FormErrors | None = None,
) -> HTMLResponse:
    try:
        question = await api.get(f"/api/questions/{question_id}")
    except ApiError as error:
        typed = answer_values or comment_values or edit_values
        if typed and upstream_down(error):
            # the write was refused and the question cannot be shown: keep what was typed
            return kept_form(
                renderer,
                request,
                values=typed,
                key=answer_key if answer_values else comment_key,
                errors=answer_errors or comment_errors or edit_errors,
                back=f"/questions/{question_id}",
                maxlength=COMMENT_MAX if comment_values else CONTENT_MAX,
            )
        return error_page(renderer, request, error)
    allowed = _permissions(viewer, question)
    editing_shown = any(
        str(a.get("id")) == editing_answer and allowed["answer_changeable"](a)
        for a in question.get("answers", [])
    ) or any(
        str(c.get("id")) == editing_comment and allowed["comment_changeable"](c)
        for c in question.get("comments", [])
    )
    # a refusal whose form is not on the page (the question moved on, the item is not theirs
    # or is gone) is said above the question instead of lost
    if edit_errors and not editing_shown:
        action_error, edit_errors = edit_errors, None
    if answer_errors and not allowed["can_answer"]:
        action_error, answer_errors = answer_errors, None
    status = 200
    for errors in (answer_errors, comment_errors, edit_errors, action_error):
        if errors:
            status = errors.status
    context: dict[str, Any] = {
        "question": question,
        "statuses": renderer.labels(request, STATUSES),
        "editing_answer": editing_answer,
        "editing_comment": editing_comment,
        "just_created": just_created,
        "answer_values": answer_values or {},
        "answer_errors": answer_errors or FormErrors(),
        "answer_key": answer_key or new_idempotency_key(),
        "comment_values": comment_values or {},
        "comment_errors": comment_errors or FormErrors(),
        "comment_key": comment_key or new_idempotency_key(),
        "edit_values": edit_values or {},
        "edit_errors": edit_errors or FormErrors(),
        "action_error": action_error or FormErrors(),
        "new_key": new_idempotency_key,
        "content_max": CONTENT_MAX,
        "comment_max": COMMENT_MAX,
    }
    context.update(allowed)
    return renderer.render(request, "question.html", context, status=status)


# --- edit and delete a question -----------------------------------------------------------------


@router.get("/questions/{question_id}/edit", response_class=HTMLResponse)
async def edit_form(
    request: Request, question_id: str, renderer: Renderer, member: Member, api: Api
) -> Response:
    """The question's form, filled with what it says now."""
    qid = parse_id(question_id)
    if qid is None:
        return not_found(renderer, request)
    try:
        question = await api.get(f"/api/questions/{qid}")
    except ApiError as error:
        return error_page(renderer, request, error)
    status = str(question.get("status") or "")
    if not may_change(member, question.get("author")):
        reason = N_("only the author or an admin may edit this question")
        return refused(renderer, request, renderer.gettext(request, reason), 403)
    if status != "OPEN":
        # the API's own words ("cannot edit a question that is RESOLVED; only OPEN ones"),
        # said before the member edits a question the API will refuse
        reason = f"cannot edit a question that is {status}; only OPEN ones"
        return refused(renderer, request, api_detail(reason, renderer.translator(request)), 409)
    values = {
        "title": question.get("title", ""),
        "content": question.get("content", ""),
        "bounty": str(question.get("bounty", 0)),
    }
    return _question_form(renderer, request, values=values, key=None, question=question)


@router.post("/questions/{question_id}/edit", response_class=HTMLResponse)
async def edit_question(
    request: Request,
    question_id: str,
    renderer: Renderer,
    member: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``PATCH /api/questions/{id}`` (the author or an admin, while OPEN); 303 to it."""
    qid = parse_id(question_id)
    if qid is None:
        return not_found(renderer, request)
    values, body = _question_values(form)
    try:
        await api.call("PATCH", f"/api/questions/{qid}", json=body)
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        return _question_form(
            renderer, request, values=values, key=None, question={"id": qid}, errors=errors
        )
    await flash_saved(request)
    return RedirectResponse(f"/questions/{qid}", status_code=303)


@router.post("/questions/{question_id}/delete", response_class=HTMLResponse)
async def delete_question(
    request: Request,
    question_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``DELETE /api/questions/{id}``; 303 to the list, which leaves it out while the read
    model still has it (``?deleted=<id>``)."""
    qid = parse_id(question_id)
    if qid is None:
        return not_found(renderer, request)
    try:
        await api.call("DELETE", f"/api/questions/{qid}")
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request))
        return await _question_page(renderer, request, api, viewer, qid, action_error=errors)
    await flash_saved(request, deleted=True)
    return RedirectResponse(f"/questions?deleted={qid}", status_code=303)


# --- answers ------------------------------------------------------------------------------------


@router.post("/questions/{question_id}/answers", response_class=HTMLResponse)
async def answer(
    request: Request,
    question_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``POST /api/questions/{id}/answers`` with the form's Idempotency-Key."""
    qid = parse_id(question_id)
    if qid is None:
        return not_found(renderer, request)
    values = {"content": form.get("content", "")}
    key = idempotency_key(form)
    try:
        created = await api.call(
            "POST", f"/api/questions/{qid}/answers", json=values, idempotency_key=key
        )
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        return await _question_page(
            renderer,
            request,
            api,
            viewer,
            qid,
            answer_values=values,
            answer_errors=errors,
            answer_key=key,
        )
    await flash_saved(request)
    return RedirectResponse(f"/questions/{qid}#a-{created.body['id']}", status_code=303)


@router.post("/questions/{question_id}/answers/{answer_id}/edit", response_class=HTMLResponse)
async def edit_answer(
    request: Request,
    question_id: str,
    answer_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``PATCH /api/questions/{id}/answers/{aid}``."""
    qid, aid = parse_id(question_id), parse_id(answer_id)
    if qid is None or aid is None:
        return not_found(renderer, request)
    values = {"content": form.get("content", "")}
    try:
        await api.call("PATCH", f"/api/questions/{qid}/answers/{aid}", json=values)
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        return await _question_page(
            renderer,
            request,
            api,
            viewer,
            qid,
            editing_answer=aid,
            edit_values=values,
            edit_errors=errors,
        )
    await flash_saved(request)
    return RedirectResponse(f"/questions/{qid}#a-{aid}", status_code=303)


@router.post("/questions/{question_id}/answers/{answer_id}/delete", response_class=HTMLResponse)
async def delete_answer(
    request: Request,
    question_id: str,
    answer_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``DELETE /api/questions/{id}/answers/{aid}``."""
    qid, aid = parse_id(question_id), parse_id(answer_id)
    if qid is None or aid is None:
        return not_found(renderer, request)
    try:
        await api.call("DELETE", f"/api/questions/{qid}/answers/{aid}")
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request))
        return await _question_page(renderer, request, api, viewer, qid, action_error=errors)
    await flash_saved(request, deleted=True)
    return RedirectResponse(f"/questions/{qid}#answers", status_code=303)


@router.post("/questions/{question_id}/answers/{answer_id}/accept", response_class=HTMLResponse)
async def accept(
    request: Request,
    question_id: str,
    answer_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``POST /api/questions/{id}/answers/{aid}/accept`` starts the answer-acceptance saga
    (202 ``{saga_id}``); 303 to its live view, which links back here. A refusal before the
    saga starts (403 not the asker, 409 not OPEN or one's own answer) shows on the question."""
    qid, aid = parse_id(question_id), parse_id(answer_id)
    if qid is None or aid is None:
        return not_found(renderer, request)
    try:
        started = await api.call(
            "POST",
            f"/api/questions/{qid}/answers/{aid}/accept",
            idempotency_key=idempotency_key(form),
        )
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request))
        return await _question_page(renderer, request, api, viewer, qid, action_error=errors)
    saga_id = parse_id(str((started.body or {}).get("saga_id", "")))
    if saga_id is None:
        return RedirectResponse(f"/questions/{qid}", status_code=303)
    back = quote(f"/questions/{qid}", safe="")
    return RedirectResponse(f"/sagas/{saga_id}?back={back}", status_code=303)


# --- comments -----------------------------------------------------------------------------------


@router.post("/questions/{question_id}/comments", response_class=HTMLResponse)
async def add_comment(
    request: Request,
    question_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``POST /api/questions/{id}/comments`` with the form's Idempotency-Key."""
    qid = parse_id(question_id)
    if qid is None:
        return not_found(renderer, request)
    values = {"content": form.get("content", "")}
    key = idempotency_key(form)
    try:
        created = await api.call(
            "POST", f"/api/questions/{qid}/comments", json=values, idempotency_key=key
        )
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        return await _question_page(
            renderer,
            request,
            api,
            viewer,
            qid,
            comment_values=values,
            comment_errors=errors,
            comment_key=key,
        )
    await flash_saved(request)
    return RedirectResponse(f"/questions/{qid}#c-{created.body['id']}", status_code=303)


@router.post("/questions/{question_id}/comments/{comment_id}/edit", response_class=HTMLResponse)
async def edit_comment(
    request: Request,
    question_id: str,
    comment_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``PATCH /api/questions/{id}/comments/{cid}``."""
    qid, cid = parse_id(question_id), parse_id(comment_id)
    if qid is None or cid is None:
        return not_found(renderer, request)
    values = {"content": form.get("content", "")}
    try:
        await api.call("PATCH", f"/api/questions/{qid}/comments/{cid}", json=values)
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        return await _question_page(
            renderer,
            request,
            api,
            viewer,
            qid,
            editing_comment=cid,
            edit_values=values,
            edit_errors=errors,
        )
    await flash_saved(request)
    return RedirectResponse(f"/questions/{qid}#c-{cid}", status_code=303)


@router.post("/questions/{question_id}/comments/{comment_id}/delete", response_class=HTMLResponse)
async def delete_comment(
    request: Request,
    question_id: str,
    comment_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``DELETE /api/questions/{id}/comments/{cid}``."""
    qid, cid = parse_id(question_id), parse_id(comment_id)
    if qid is None or cid is None:
        return not_found(renderer, request)
    try:
        await api.call("DELETE", f"/api/questions/{qid}/comments/{cid}")
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request))
        return await _question_page(renderer, request, api, viewer, qid, action_error=errors)
    await flash_saved(request, deleted=True)
    return RedirectResponse(f"/questions/{qid}#comments", status_code=303)
