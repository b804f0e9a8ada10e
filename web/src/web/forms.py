"""Form errors from problem documents: an API refusal becomes a readable message on the field or form it came from, never a raw problem document."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from web.adapters.gateway_client import ApiError
from web.i18n import N_

Translate = Callable[[str], str]


@dataclass
class FormErrors:
    """What a form shows after a refusal: one message for the whole form and one per field
    (``{"title": "..."}``, keyed by the form field's name). ``status`` is the status the page
    is answered with: the API's own 4xx, or 200 for an API outage (web never relays a
    502-504: the gateway's breaker would count it as web's failure)."""

    message: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    status: int = 200

    def __bool__(self) -> bool:
        return bool(self.message or self.fields)

    def get(self, name: str) -> str | None:
        return self.fields.get(name)


#: The form message when a refusal is shown on its field: said once, under the field, never
#: above the form as well.
CORRECT_FIELDS = N_("Please correct the highlighted fields.")
#: Messages for the statuses a form can meet, in English (translated through the catalog).
STATUS_MESSAGES: dict[int, str] = {
    400: N_("The request was not understood. Please check the form."),
    401: N_("Your session has ended. Please log in again."),
    403: N_("You are not allowed to do this."),
    404: N_("This item no longer exists."),
    409: N_("This conflicts with the current state. Reload the page and try again."),
    413: N_("The text is too long."),
    422: CORRECT_FIELDS,
    429: N_("Too many attempts. Please wait a moment and try again."),
}
UNAVAILABLE = N_("The service is temporarily unavailable. Please try again in a moment.")

#: A field's message by the validation error's ``type`` (pydantic's error types, which the
#: services' 422 ``errors[]`` carry), so a field reads the same in either language whatever
#: English ``msg`` the service wrote. Every message fits any field (a password, an email, a
#: title): none names what kind of text the field holds.
FIELD_MESSAGES: dict[str, str] = {
    "missing": N_("This field is required."),
    "string_too_short": N_("This is too short."),
    "string_too_long": N_("This is too long."),
    "string_type": N_("Enter text here."),
    "int_type": N_("Enter a whole number."),
    "int_parsing": N_("Enter a whole number."),
    "int_from_float": N_("Enter a whole number."),
    "greater_than_equal": N_("This number is too small."),
    "less_than_equal": N_("This number is too large."),
    "greater_than": N_("This number is too small."),
    "less_than": N_("This number is too large."),
    "extra_forbidden": N_("This field is not accepted."),
    "value_error": N_("This value is not valid."),
}
#: The same with the bound the error's ``ctx`` names (``{"min_length": 8}``, chassis.problems):
#: ``(type, ctx key) -> message`` filled with ``%(n)s``.
BOUNDED_MESSAGES: dict[tuple[str, str], str] = {
    ("string_too_short", "min_length"): N_("Too short: at least %(n)s characters."),
    ("string_too_long", "max_length"): N_("Too long: at most %(n)s characters."),
    ("greater_than_equal", "ge"): N_("Must be at least %(n)s."),
    ("greater_than", "gt"): N_("Must be more than %(n)s."),
    ("less_than_equal", "le"): N_("Must be at most %(n)s."),
    ("less_than", "lt"): N_("Must be less than %(n)s."),
}
#: A blank field a ``min_length=1`` refuses: "at least 1 characters" says it worse.
REQUIRED = N_("This field is required.")
INVALID_EMAIL = N_("Enter a valid email address.")
INVALID_VALUE = N_("This value is not valid.")

#: Details the board and Q&A services write for people (their domain refusals, verbatim), put
#: in the catalog so a Korean page shows them in Korean. A detail not listed is shown as the
#: service wrote it: still readable, only in English.
API_DETAILS: tuple[str, ...] = (
    N_("board not found"),
    N_("post not found"),
    N_("comment not found"),
    N_("only an admin may post on the notice board"),
    N_("only the author or an admin may change this post"),
    N_("only the author or an admin may change this comment"),
    N_("no such question"),
    N_("no such answer"),
    N_("the question has no such answer"),
    N_("the question has no such comment"),
    N_("a withdrawn member cannot ask questions"),
    N_("a withdrawn member cannot answer"),
    N_("a withdrawn member cannot comment"),
    N_("only the author or an admin may edit this question"),
    N_("only the author or an admin may delete this question"),
    N_("only the answer's author or an admin may edit it"),
    N_("only the answer's author or an admin may delete it"),
    N_("only the comment's author or an admin may edit it"),
    N_("only the comment's author or an admin may delete it"),
    N_("cannot edit an accepted answer"),
    N_("cannot delete an accepted answer"),
    N_("cannot edit an answer while the question is ACCEPTING"),
    N_("cannot delete an answer while the question is ACCEPTING"),
    N_("cannot edit a question that is ACCEPTING; only OPEN ones"),
    N_("cannot edit a question that is RESOLVED; only OPEN ones"),
    N_("cannot edit a question that is CLOSED; only OPEN ones"),
    N_("cannot delete a question that is ACCEPTING; only OPEN ones"),
    N_("cannot delete a question that is RESOLVED; only OPEN ones"),
    N_("cannot delete a question that is CLOSED; only OPEN ones"),
    N_("only an OPEN question takes answers; it is ACCEPTING"),
    N_("only an OPEN question takes answers; it is RESOLVED"),
    N_("only an OPEN question takes answers; it is CLOSED"),
    N_("only an OPEN question can accept an answer; it is ACCEPTING"),
    N_("only an OPEN question can accept an answer; it is RESOLVED"),
    N_("only an OPEN question can accept an answer; it is CLOSED"),
    N_("only the asker may accept an answer"),
    N_("the asker cannot accept their own answer"),
    N_("the answer's author has withdrawn"),
    N_("the answer is not on this question"),
    N_("the member has withdrawn"),
    N_("the member is withdrawing"),
    # the chassis' and the saga service's own
    N_("the request is not valid"),
    N_("Idempotency-Key was already used with a different request"),
)

#: Details with a value in them (a field's name, a bound, a list): the services' fixed
#: sentences (board's and qna's ``checked_text``, the gateway's and member's rate limits, the
#: saga service's fault API), matched whole and said again from the catalog with the values.
#: A detail neither listed nor matched is shown as the service wrote it.
DETAIL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?P<field>[a-z_]+) must not be blank"), N_("%(field)s: enter some text.")),
    (
        re.compile(
            r"(?P<field>[a-z_]+) must be (?P<min>\d+) to (?P<max>\d+) characters"
            r"(?: and not blank)?"
        ),
        N_("%(field)s: %(min)s to %(max)s characters, not only blanks."),
    ),
    (
        re.compile(r"(?P<field>[a-z_]+) must be between (?P<min>\d+) and (?P<max>\d+)"),
        N_("%(field)s: a number from %(min)s to %(max)s."),
    ),
    (
        re.compile(r"more than (?P<n>\d+) (?:[a-z]+ )?requests per minute(?: from this address)?"),
        N_("More than %(n)s requests a minute came from here. Please wait a minute."),
    ),
    (
        re.compile(r"service must be one of (?P<choices>[a-z, -]+)"),
        N_("The service must be one of: %(choices)s."),
    ),
)
#: The API's field names as a person reads them.
FIELD_LABELS: dict[str, str] = {
    "title": N_("Title"),
    "content": N_("Content"),
    "name": N_("Name"),
    "description": N_("Description"),
    "nickname": N_("Nickname"),
    "bounty": N_("Bounty"),
    "email": N_("Email"),
    "password": N_("Password"),
}


def api_detail(detail: str, translate: Translate) -> str:
    """A problem document's ``detail`` in the visitor's language: a listed detail from the
    catalog, a ``DETAIL_PATTERNS`` sentence rebuilt from the catalog with its values, any
    other as the service wrote it."""
    translated = translate(detail)
    if translated != detail:
        return translated
    for pattern, message in DETAIL_PATTERNS:
        found = pattern.fullmatch(detail)
        if found is None:
            continue
        values = found.groupdict()
        if "field" in values:
            values["field"] = translate(FIELD_LABELS.get(values["field"], values["field"]))
        return translate(message) % values
    return detail


def from_api_error(
    error: ApiError,
    translate: Translate,
    field_names: dict[str, str] | None = None,
    form_fields: Collection[str] = (),
) -> FormErrors:
    """Map ``error`` onto a form.

    A 422's ``errors[].loc`` (``["body", "title"]``) names the API field; ``field_names`` maps
    an API field to the form's field when they differ (default: the same name). The field's
    message is chosen by the error's ``type`` (``FIELD_MESSAGES``), translated. A 422 without
    ``errors`` whose ``detail`` starts with the name of one of ``form_fields`` (a domain check:
    ``"title must not be blank"``) is shown on that field. A refusal shown on a field is said
    there only: the form message is then ``CORRECT_FIELDS``. Otherwise the API's ``detail`` is
    the form message for a 4xx when it has one, since the services write it for
    people (``"nickname already taken"``, translated when ``API_DETAILS`` knows it); an outage
    (502-504, and any 5xx: web answers no 5xx for an upstream's failure) gets ``UNAVAILABLE``."""
    if error.unavailable or error.status >= 500:
        return FormErrors(translate(UNAVAILABLE), status=200)
    names = field_names or {}
    result = FormErrors(status=error.status if 400 <= error.status < 500 else 200)
    problem: dict[str, Any] = error.problem
    for entry in problem.get("errors") or []:
        if not isinstance(entry, dict):
            continue
        loc = [str(part) for part in entry.get("loc") or [] if part != "body"]
        api_field = loc[0] if loc else ""
        form_field = names.get(api_field, api_field)
        if form_field and form_field not in result.fields:
            result.fields[form_field] = _field_message(entry, form_field, translate)
    detail = problem.get("detail")
    if error.status == 422 and not result.fields and isinstance(detail, str):
        api_field = detail.split(" ", 1)[0]
        form_field = names.get(api_field, api_field)
        if form_field in form_fields:
            result.fields[form_field] = api_detail(detail, translate)
    if result.fields:
        result.message = translate(CORRECT_FIELDS)
    elif isinstance(detail, str) and detail and error.status != 401:
        # the services write details for people; a known one is in the catalog (translated)
        result.message = api_detail(detail, translate)
    else:
        result.message = translate(STATUS_MESSAGES.get(error.status, UNAVAILABLE))
    return result


def _field_message(entry: Mapping[str, Any], form_field: str, translate: Translate) -> str:
    kind = str(entry.get("type") or "")
    found = entry.get("ctx")
    ctx: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    for (bounded_kind, key), text in BOUNDED_MESSAGES.items():
        bound = ctx.get(key) if kind == bounded_kind else None
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            if key == "min_length" and bound <= 1:
                return translate(REQUIRED)
            return translate(text) % {"n": bound}
    if kind == "value_error" and "email" in form_field:
        return translate(INVALID_EMAIL)
    known = FIELD_MESSAGES.get(kind)
    if known is not None:
        return translate(known)
    msg = entry.get("msg")
    return translate(str(msg)) if msg else translate(INVALID_VALUE)


# --- numbers typed into a form ------------------------------------------------------------------

#: A whole number as a form sends it: ASCII digits, an optional sign, at most 9 digits (below
#: any bound the API sets, far below an int's). ``str.isdigit`` is not this test: it is True
#: for "²" or "①", which ``int`` refuses, and ``int`` takes Arabic-Indic digits, "1_000" and
#: surrounding whitespace, which no form field means.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,9}", re.ASCII)


def whole_number(raw: str | None) -> int | None:
    """``raw`` (leading and trailing blanks ignored) as an int, or ``None`` when it is not a
    whole number written with ASCII digits: the caller answers a field error (4xx), never
    lets a ``ValueError`` become a 500."""
    text = (raw or "").strip()
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else None


# --- idempotent form submission ----------------------------------------------------------------

#: The hidden field every create form carries (one UUID per rendered form).
IDEMPOTENCY_FIELD = "idempotency_key"


def new_idempotency_key() -> str:
    """A fresh key for a form being rendered: a random UUID (RFC 9562 version 4)."""
    return str(uuid.uuid4())


def idempotency_key(form: Mapping[str, str]) -> str:
    """The key the submitted form was rendered with, sent as ``Idempotency-Key`` so a double
    submit (two clicks, a resend after a timeout) creates one item: the service stores the
    first result under the key with the effect and returns it to the retry. A missing or
    malformed key (a hand-made request) gets a fresh one: the call still works, only without
    the double-submit guard. The same key is rendered again when the form comes back with an
    error: a refused request stored nothing under it (the claim rolls back with the effect)."""
    raw = form.get(IDEMPOTENCY_FIELD, "")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return new_idempotency_key()
