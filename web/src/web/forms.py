"""Form errors from problem documents: an API refusal becomes a readable message on the field or form it came from, never a raw problem document."""

from __future__ import annotations

from collections.abc import Callable
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


#: Messages for the statuses a form can meet, in English (translated through the catalog).
STATUS_MESSAGES: dict[int, str] = {
    400: N_("The request was not understood. Please check the form."),
    401: N_("Your session has ended. Please log in again."),
    403: N_("You are not allowed to do this."),
    404: N_("This item no longer exists."),
    409: N_("This conflicts with the current state. Reload the page and try again."),
    413: N_("The text is too long."),
    422: N_("Please correct the highlighted fields."),
    429: N_("Too many attempts. Please wait a moment and try again."),
}
UNAVAILABLE = N_("The service is temporarily unavailable. Please try again in a moment.")


def from_api_error(
    error: ApiError, translate: Translate, field_names: dict[str, str] | None = None
) -> FormErrors:
    """Map ``error`` onto a form.

    A 422's ``errors[].loc`` (``["body", "title"]``) names the API field; ``field_names`` maps
    an API field to the form's field when they differ (default: the same name). The API's
    ``detail`` is shown as the form message for a 4xx other than 422 when it has one, since the
    services write it for people (``"nickname already taken"``); an outage gets ``UNAVAILABLE``."""
    if error.unavailable:
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
            result.fields[form_field] = str(
                entry.get("msg") or translate(N_("This value is not valid."))
            )
    detail = problem.get("detail")
    if error.status == 422 and result.fields:
        result.message = translate(STATUS_MESSAGES[422])
    elif isinstance(detail, str) and detail and error.status != 401:
        # the services write details for people; a known one is in the catalog (translated)
        result.message = translate(detail)
    else:
        result.message = translate(STATUS_MESSAGES.get(error.status, UNAVAILABLE))
    return result
