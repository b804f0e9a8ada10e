"""Board screens (게시판 목록, 댓글관리): server-rendered pages over the board API, each write a form that redirects after it succeeds (post/redirect/get).

Lists come from board's read model and may lag a write by a moment (``content.pending_item``);
a post and its comments come from the write model and show a change at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.adapters.gateway_client import ApiError
from web.entrypoints.deps import Api, CsrfForm, Member, Viewer
from web.entrypoints.pages.content import (
    COMMENTS_PER_PAGE,
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
    from_api_error,
    idempotency_key,
    new_idempotency_key,
    whole_number,
)
from web.i18n import N_

router = APIRouter()

#: The board only admins post on (docs/services/board.md, "Seeded boards": ``notice``). The
#: public board shape has no admin-only flag, so the slug is the contract the page reads.
NOTICE_SLUG = "notice"
#: Limits of board's API (services/board: schemas and domain), repeated as the form's
#: ``maxlength`` so a browser stops the typing; the API checks them anyway.
TITLE_MAX = 200
CONTENT_MAX = 20_000
COMMENT_MAX = 2_000
SEARCH_MAX = 100


def _admin_only(board: dict[str, Any]) -> bool:
    return board.get("slug") == NOTICE_SLUG


def may_write(session: Any, board: dict[str, Any]) -> bool:
    """Whether the page shows the write button: every visitor on an open board (a guest is
    sent to log in), only admins on the notice board."""
    if _admin_only(board):
        return bool(session is not None and session.signed_in and session.is_admin)
    return True


async def _board(api: Any, board_id: str) -> dict[str, Any] | None:
    boards: list[dict[str, Any]] = await api.get("/api/boards")
    return next((b for b in boards if str(b.get("id")) == board_id), None)


# --- board list ---------------------------------------------------------------------------------


@router.get("/boards", response_class=HTMLResponse)
async def board_list(request: Request, renderer: Renderer, viewer: Viewer, api: Api) -> Response:
    """게시판 목록: every board (``GET /api/boards``)."""
    try:
        boards = await api.get("/api/boards")
    except ApiError as error:
        if not upstream_down(error):
            return error_page(renderer, request, error)
        return renderer.render(request, "boards.html", {"boards": [], "unavailable": True})
    return renderer.render(request, "boards.html", {"boards": boards, "unavailable": False})


# --- a board's posts ----------------------------------------------------------------------------


@router.get("/boards/{board_id}", response_class=HTMLResponse)
async def post_list(
    request: Request,
    board_id: str,
    renderer: Renderer,
    viewer: Viewer,
    api: Api,
    page: Page = 1,
    size: Size = 20,
    q: Annotated[str | None, Query(max_length=SEARCH_MAX)] = None,
    created: Annotated[str | None, Query(max_length=64)] = None,
    deleted: Annotated[str | None, Query(max_length=64)] = None,
    poll: Annotated[int, Query(ge=0, le=1000)] = 0,
    fragment: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    """A board's posts, newest first (read model): ``page``, ``size`` and the title search
    ``q`` go to ``GET /api/boards/{id}/posts`` as given. ``fragment=1`` answers the list alone
    (app.js asks it again while a just-created post is not listed yet)."""
    bid = parse_id(board_id)
    if bid is None:
        return not_found(renderer, request)
    search = (q or "").strip() or None
    context: dict[str, Any] = {
        "board": {"id": bid, "name": "", "slug": ""},
        "posts": [],
        "total": 0,
        "page": page,
        "size": size,
        "q": search or "",
        "pending": None,
        "unavailable": False,
        "can_write": False,
        "poll_limit": POLL_LIMIT,
        "poll_seconds": POLL_SECONDS,
        "page_url": page_url(request),
    }
    try:
        board = await _board(api, bid)
        if board is None:
            return not_found(renderer, request)
        context["board"] = board
        listing = await api.get(
            f"/api/boards/{bid}/posts", params={"page": page, "size": size, "q": search}
        )
    except ApiError as error:
        if not upstream_down(error):
            return error_page(renderer, request, error)
        context["unavailable"] = True
        return renderer.render(
            request, "_posts_list.html" if fragment else "board_posts.html", context
        )
    items: list[dict[str, Any]] = listing.get("items", [])
    context.update(
        posts=without(items, deleted),
        total=listing.get("total", 0),
        can_write=may_write(viewer, board),
        pending=pending_item(
            request, created, items, poll=poll, shown_here=page == 1 and search is None
        ),
    )
    return renderer.render(request, "_posts_list.html" if fragment else "board_posts.html", context)


# --- write a post -------------------------------------------------------------------------------


@router.get("/boards/{board_id}/write", response_class=HTMLResponse)
async def write_form(
    request: Request, board_id: str, renderer: Renderer, member: Member, api: Api
) -> Response:
    """The empty form, with a fresh Idempotency-Key."""
    bid = parse_id(board_id)
    if bid is None:
        return not_found(renderer, request)
    try:
        board = await _board(api, bid)
    except ApiError as error:
        return error_page(renderer, request, error)
    if board is None:
        return not_found(renderer, request)
    if not may_write(member, board):
        # say it now, not after the member has written a post the API refuses
        return refused(
            renderer,
            request,
            renderer.gettext(request, N_("only an admin may post on the notice board")),
        )
    return _post_form(renderer, request, board=board, values={}, key=new_idempotency_key())


def _post_form(
    renderer: Pages,
    request: Request,
    *,
    board: dict[str, Any] | None,
    values: dict[str, str],
    key: str | None,
    post: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
) -> HTMLResponse:
    errors = errors or FormErrors()
    return renderer.render(
        request,
        "post_form.html",
        {
            "board": board,
            "post": post,
            "values": values,
            "errors": errors,
            "idempotency_key": key,
            "limits": {"title": TITLE_MAX, "content": CONTENT_MAX},
        },
        status=errors.status,
    )


@router.post("/boards/{board_id}/write", response_class=HTMLResponse)
async def write_post(
    request: Request, board_id: str, renderer: Renderer, member: Member, form: CsrfForm, api: Api
) -> Response:
    """``POST /api/boards/{id}/posts`` with the form's Idempotency-Key; 303 to the new post."""
    bid = parse_id(board_id)
    if bid is None:
        return not_found(renderer, request)
    values = {"title": form.get("title", ""), "content": form.get("content", "")}
    key = idempotency_key(form)
    try:
        created = await api.call(
            "POST", f"/api/boards/{bid}/posts", json=values, idempotency_key=key
        )
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        board = {"id": bid, "name": form.get("board_name", ""), "slug": ""}
        return _post_form(renderer, request, board=board, values=values, key=key, errors=errors)
    post_id = str(created.body["id"])
    await flash_saved(request)
    return RedirectResponse(f"/posts/{post_id}?created=1", status_code=303)


# --- a post and its comments --------------------------------------------------------------------


@router.get("/posts/{post_id}", response_class=HTMLResponse)
async def post_detail(
    request: Request,
    post_id: str,
    renderer: Renderer,
    viewer: Viewer,
    api: Api,
    cpage: Page = 1,
    edit_comment: Annotated[str | None, Query(max_length=64)] = None,
    created: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    """A post (write model; counts a view) and a page of its comments, oldest first.
    ``edit_comment=<id>`` opens that comment's edit form in place."""
    pid = parse_id(post_id)
    if pid is None:
        return not_found(renderer, request)
    return await _post_page(
        renderer,
        request,
        api,
        viewer,
        pid,
        cpage=cpage,
        editing=parse_id(edit_comment),
        just_created=bool(created),
    )


async def _post_page(
    renderer: Pages,
    request: Request,
    api: Any,
    viewer: Any,
    post_id: str,
    *,
    cpage: int = 1,
    editing: str | None = None,
    just_created: bool = False,
    comment_values: dict[str, str] | None = None,
    comment_errors: FormErrors | None = None,
    comment_key: str | None = None,
    edit_values: dict[str, str] | None = None,
    edit_errors: FormErrors | None = None,
    action_error: FormErrors | None = None,
) -> HTMLResponse:
    try:
        post = await api.get(f"/api/posts/{post_id}")
        comments = await api.get(
            f"/api/posts/{post_id}/comments", params={"page": cpage, "size": COMMENTS_PER_PAGE}
        )
    except ApiError as error:
        typed = comment_values or edit_values
        if typed and upstream_down(error):
            # the write was refused and the post cannot be shown: keep what was typed
            return kept_form(
                renderer,
                request,
                values=typed,
                key=comment_key,
                errors=comment_errors or edit_errors,
                back=f"/posts/{post_id}?cpage={cpage}",
                maxlength=COMMENT_MAX,
                hidden={"cpage": str(cpage)},
            )
        return error_page(renderer, request, error)
    items: list[dict[str, Any]] = comments.get("items", [])
    if edit_errors and not any(
        str(c.get("id")) == editing and may_change(viewer, c.get("author")) for c in items
    ):
        # the edit form is not on the page (not theirs, or gone): say why above the post
        action_error, edit_errors = edit_errors, None
    status = 200
    for errors in (comment_errors, edit_errors, action_error):
        if errors:
            status = errors.status
    return renderer.render(
        request,
        "post.html",
        {
            "post": post,
            "can_change": may_change(viewer, post.get("author")),
            "comments": items,
            "comments_total": comments.get("total", 0),
            "cpage": cpage,
            "csize": COMMENTS_PER_PAGE,
            "may_change": lambda author: may_change(viewer, author),
            "editing": editing,
            "just_created": just_created,
            "comment_values": comment_values or {},
            "comment_errors": comment_errors or FormErrors(),
            "comment_key": comment_key or new_idempotency_key(),
            "edit_values": edit_values or {},
            "edit_errors": edit_errors or FormErrors(),
            "action_error": action_error or FormErrors(),
            "comment_max": COMMENT_MAX,
            "comment_page_url": lambda n: f"/posts/{post_id}?cpage={n}#comments",
        },
        status=status,
    )


# --- edit and delete a post ---------------------------------------------------------------------


@router.get("/posts/{post_id}/edit", response_class=HTMLResponse)
async def edit_form(
    request: Request, post_id: str, renderer: Renderer, member: Member, api: Api
) -> Response:
    """The post's form, filled with what it says now."""
    pid = parse_id(post_id)
    if pid is None:
        return not_found(renderer, request)
    try:
        post = await api.get(f"/api/posts/{pid}")
    except ApiError as error:
        return error_page(renderer, request, error)
    if not may_change(member, post.get("author")):
        return refused(
            renderer,
            request,
            renderer.gettext(request, N_("only the author or an admin may change this post")),
        )
    values = {"title": post.get("title", ""), "content": post.get("content", "")}
    return _post_form(renderer, request, board=None, values=values, key=None, post=post)


@router.post("/posts/{post_id}/edit", response_class=HTMLResponse)
async def edit_post(
    request: Request, post_id: str, renderer: Renderer, member: Member, form: CsrfForm, api: Api
) -> Response:
    """``PATCH /api/posts/{id}`` (the author or an admin); 303 to the post."""
    pid = parse_id(post_id)
    if pid is None:
        return not_found(renderer, request)
    values = {"title": form.get("title", ""), "content": form.get("content", "")}
    try:
        await api.call("PATCH", f"/api/posts/{pid}", json=values)
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        post = {"id": pid, "board_id": form.get("board_id", "")}
        return _post_form(
            renderer, request, board=None, values=values, key=None, post=post, errors=errors
        )
    await flash_saved(request)
    return RedirectResponse(f"/posts/{pid}", status_code=303)


@router.post("/posts/{post_id}/delete", response_class=HTMLResponse)
async def delete_post(
    request: Request,
    post_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``DELETE /api/posts/{id}``; 303 to the board's list, which leaves the post out while
    the read model still has it (``?deleted=<id>``)."""
    pid = parse_id(post_id)
    if pid is None:
        return not_found(renderer, request)
    try:
        await api.call("DELETE", f"/api/posts/{pid}")
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request))
        return await _post_page(renderer, request, api, viewer, pid, action_error=errors)
    await flash_saved(request, deleted=True)
    board_id = parse_id(form.get("board_id"))
    target = f"/boards/{board_id}?deleted={pid}" if board_id else "/boards"
    return RedirectResponse(target, status_code=303)


# --- comments -----------------------------------------------------------------------------------


@router.post("/posts/{post_id}/comments", response_class=HTMLResponse)
async def add_comment(
    request: Request, post_id: str, renderer: Renderer, viewer: Member, form: CsrfForm, api: Api
) -> Response:
    """``POST /api/posts/{id}/comments`` with the form's Idempotency-Key; 303 to the comment."""
    pid = parse_id(post_id)
    if pid is None:
        return not_found(renderer, request)
    values = {"content": form.get("content", "")}
    key = idempotency_key(form)
    try:
        created = await api.call(
            "POST", f"/api/posts/{pid}/comments", json=values, idempotency_key=key
        )
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        return await _post_page(
            renderer,
            request,
            api,
            viewer,
            pid,
            cpage=_last_page(form),
            comment_values=values,
            comment_errors=errors,
            comment_key=key,
        )
    await flash_saved(request)
    return RedirectResponse(
        f"/posts/{pid}?cpage={_last_page(form)}#c-{created.body['id']}", status_code=303
    )


def _last_page(form: dict[str, str]) -> int:
    """The comment page the form was on (a new comment lands on the last one)."""
    number = whole_number(form.get("cpage"))
    return 1 if number is None else max(1, min(number, 1_000_000))


@router.post("/posts/{post_id}/comments/{comment_id}/edit", response_class=HTMLResponse)
async def edit_comment(
    request: Request,
    post_id: str,
    comment_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``PATCH /api/posts/{id}/comments/{cid}`` (the author or an admin)."""
    pid, cid = parse_id(post_id), parse_id(comment_id)
    if pid is None or cid is None:
        return not_found(renderer, request)
    values = {"content": form.get("content", "")}
    cpage = _last_page(form)
    try:
        await api.call("PATCH", f"/api/posts/{pid}/comments/{cid}", json=values)
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request), form_fields=values)
        return await _post_page(
            renderer,
            request,
            api,
            viewer,
            pid,
            cpage=cpage,
            editing=cid,
            edit_values=values,
            edit_errors=errors,
        )
    await flash_saved(request)
    return RedirectResponse(f"/posts/{pid}?cpage={cpage}#c-{cid}", status_code=303)


@router.post("/posts/{post_id}/comments/{comment_id}/delete", response_class=HTMLResponse)
async def delete_comment(
    request: Request,
    post_id: str,
    comment_id: str,
    renderer: Renderer,
    viewer: Member,
    form: CsrfForm,
    api: Api,
) -> Response:
    """``DELETE /api/posts/{id}/comments/{cid}`` (the author or an admin)."""
    pid, cid = parse_id(post_id), parse_id(comment_id)
    if pid is None or cid is None:
        return not_found(renderer, request)
    cpage = _last_page(form)
    try:
        await api.call("DELETE", f"/api/posts/{pid}/comments/{cid}")
    except ApiError as error:
        errors = from_api_error(error, renderer.translator(request))
        return await _post_page(
            renderer, request, api, viewer, pid, cpage=cpage, action_error=errors
        )
    await flash_saved(request, deleted=True)
    return RedirectResponse(f"/posts/{pid}?cpage={cpage}#comments", status_code=303)
