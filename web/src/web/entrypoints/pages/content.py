"""Read-your-writes over eventually consistent lists, shared by the board and Q&A screens: a just-created item the read model has not caught up with shows as a row that refreshes itself.

Also here: an upstream outage rendered as a page (web answers no 502-504 of its own for an
upstream's failure: the gateway's breaker would count it as web's outage and open the circuit
to the whole site), and who may change an item (the buttons a page shows; the API decides).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from web.adapters.gateway_client import ApiError
from web.entrypoints.deps import LoginRequired, flash
from web.entrypoints.rendering import Pages
from web.forms import UNAVAILABLE, FormErrors, api_detail
from web.i18n import N_
from web.sessions import Session

#: How many times a list lacking a just-created item asks again, about a second apart: the
#: read models normally catch up well within these ~10 s (docs/architecture.md, projections).
POLL_LIMIT = 10
#: Seconds between two polls (app.js and the no-script refresh alike).
POLL_SECONDS = 1
#: Comments shown per page under a post.
COMMENTS_PER_PAGE = 50


def parse_id(raw: str | None) -> str | None:
    """``raw`` as a canonical UUID string, or ``None`` (the API's ids are UUIDs)."""
    if not raw:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


@dataclass(frozen=True)
class Pending:
    """A just-created item (``?created=<id>``, carried in the URL so it needs no session) that
    the list the visitor is looking at does not show yet.

    ``live`` while polls are left: the page then carries a no-script ``<meta refresh>`` to
    ``refresh_url`` and app.js asks ``fragment_url`` (the list alone) again every second, until
    the item is there or ``POLL_LIMIT`` polls have passed; then the row says it takes longer."""

    id: str
    poll: int
    refresh_url: str
    fragment_url: str

    @property
    def live(self) -> bool:
        return self.poll < POLL_LIMIT


def pending_item(
    request: Request,
    created: str | None,
    items: Iterable[Mapping[str, Any]],
    *,
    poll: int,
    shown_here: bool,
) -> Pending | None:
    """The ``Pending`` row for ``created``, or ``None`` when there is nothing to wait for.

    ``shown_here`` says whether the item would be on this list at all once published (the
    first page, newest first, with no search or a filter it matches): a page it could never
    appear on must not wait for it."""
    item_id = parse_id(created)
    if item_id is None or not shown_here:
        return None
    if any(str(item.get("id")) == item_id for item in items):
        return None
    url = request.url.remove_query_params(["poll", "fragment"])
    refresh = url.include_query_params(poll=min(poll + 1, POLL_LIMIT))
    fragment = url.include_query_params(fragment=1)
    return Pending(item_id, poll, _relative(refresh), _relative(fragment))


def _relative(url: Any) -> str:
    return str(url.path) + (f"?{url.query}" if url.query else "")


def without(items: list[dict[str, Any]], deleted: str | None) -> list[dict[str, Any]]:
    """``items`` less the one just deleted (``?deleted=<id>``): the read model may still list
    it for a moment, and a row that opens a 404 is the confusing kind of stale."""
    gone = parse_id(deleted)
    return [item for item in items if str(item.get("id")) != gone] if gone else items


def upstream_down(error: ApiError) -> bool:
    """An outage, not a refusal: the page says "temporarily unavailable" and answers 200."""
    return error.unavailable or error.status >= 500


def may_change(session: Session | None, author: Mapping[str, Any] | None) -> bool:
    """The author or an admin (board's and qna's rule for edit and delete). A withdrawn author
    has no id, so only an admin may change what they left. Buttons only: the API decides."""
    if session is None or not session.signed_in:
        return False
    if session.is_admin:
        return True
    author_id = (author or {}).get("id")
    return author_id is not None and str(author_id) == session.member_id


#: A list's page number and size as the query string gives them (an out-of-range one is the 400 page).
Page = Annotated[int, Query(ge=1, le=1_000_000)]
Size = Annotated[int, Query(ge=1, le=100)]


def not_found(renderer: Pages, request: Request) -> HTMLResponse:
    """The 404 page (an id in the path that is not a UUID, or an item the API does not know)."""
    return renderer.render(request, "error.html", {"status": 404}, status=404)


def refused(renderer: Pages, request: Request, message: str, status: int = 403) -> HTMLResponse:
    """The 403 (or 409) page that says why a form is not offered (``message``, translated)."""
    return renderer.render(
        request, "error.html", {"status": status, "message": message}, status=status
    )


def error_page(renderer: Pages, request: Request, error: ApiError) -> HTMLResponse:
    """A page for a failed read: 200 with "temporarily unavailable" for an outage, the HTML
    404/403/... page for a refusal, a sign-in for a 401 (the session layer already tried a
    refresh). Raises ``LoginRequired`` for a 401."""
    if upstream_down(error):
        return renderer.render(
            request, "unavailable.html", {"message": renderer.gettext(request, UNAVAILABLE)}
        )
    if error.status == 401:
        raise LoginRequired(request.url.path)
    status = error.status if 400 <= error.status < 500 else 400
    detail = error.problem.get("detail")
    message = (
        api_detail(detail, renderer.translator(request))
        if isinstance(detail, str) and detail
        else ""
    )
    return renderer.render(
        request, "error.html", {"status": status, "message": message}, status=status
    )


def kept_form(
    renderer: Pages,
    request: Request,
    *,
    values: Mapping[str, str],
    key: str | None,
    errors: FormErrors | None,
    back: str,
    maxlength: int,
    hidden: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The typed text in a form that posts to the same address again, with the reason it was
    not sent: for a refused write whose page cannot be shown either (the service is down, so
    the item it belongs to cannot be read). The same Idempotency-Key goes again: a write that
    did reach the service is not made twice. 200: web relays no outage as its own 5xx."""
    return renderer.render(
        request,
        "kept_form.html",
        {
            "action": request.url.path,
            "values": values,
            "key": key,
            "message": errors.message if errors else renderer.gettext(request, UNAVAILABLE),
            "back": back,
            "maxlength": maxlength,
            "hidden": hidden or {},
        },
    )


def page_number(total: int, size: int) -> int:
    """How many pages ``total`` items fill at ``size`` a page (at least one)."""
    return max(1, (total + size - 1) // size) if size > 0 else 1


SAVED = N_("Saved. Lists may take a moment to show the change.")
DELETED = N_("Deleted. Lists may take a moment to show the change.")


async def flash_saved(request: Request, *, deleted: bool = False) -> None:
    """The one-shot message of the page a write redirects to: the change is made, and the
    lists (read models, eventually consistent) may not show it for a moment."""
    await flash(request, DELETED if deleted else SAVED, "ok")


def page_url(request: Request, param: str = "page") -> Callable[[int], str]:
    """The link to page ``n`` of the list the visitor is on: the same filters and search, the
    one-shot hints (``created``, ``deleted``, ``poll``, ``fragment``) dropped."""
    base = request.url.remove_query_params(["created", "deleted", "poll", "fragment", param])

    def url(number: int) -> str:
        return _relative(base.include_query_params(**{param: number}))

    return url
