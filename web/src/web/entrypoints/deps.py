"""Request dependencies of the pages: the visitor's session, sign-in guard, CSRF-checked forms and the token-carrying API caller (BFF).

Interface of this revision (the session layer fills the bodies): pages declare
``viewer: Viewer``, ``member: Member``, ``form: CsrfForm`` and ``api: Api`` and never touch
cookies, tokens or Redis themselves.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request

from web.adapters.gateway_client import ApiResponse, GatewayClient
from web.sessions import Session


class LoginRequired(Exception):
    """The page needs a signed-in member: answered with 303 to ``/login?next=<path>``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path

    @property
    def location(self) -> str:
        return f"/login?next={quote(self.next_path, safe='')}"


class CsrfRefused(Exception):
    """A POST without this session's CSRF token, or from another Origin: answered with a 403
    page ("this form has expired, reload the page") before any API call."""


async def current_session(request: Request) -> Session | None:
    """The visitor's session, or ``None`` (no cookie, unknown cookie, Redis down); also
    stored on ``request.state.session`` for the templates."""
    found: Session | None = getattr(request.state, "session", None)
    request.state.session = found
    return found


async def require_member(request: Request) -> Session:
    """The signed-in member's session, else ``LoginRequired``."""
    session = await current_session(request)
    if session is None or not session.signed_in:
        raise LoginRequired(request.url.path)
    return session


async def checked_form(request: Request) -> dict[str, str]:
    """The POSTed form fields (last value wins) after the CSRF check; raises ``CsrfRefused``."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


class ApiCaller:
    """Calls the gateway on behalf of the visitor: with the member's access token (refreshed
    before it expires, single-flight per session), the browser's address and the request id.
    Each method returns the 2xx ``ApiResponse`` or raises ``ApiError``."""

    def __init__(self, gateway: GatewayClient, request: Request, session: Session | None) -> None:
        self._gateway = gateway
        self._request = request
        self._session = session

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiResponse:
        client = self._request.client
        return await self._gateway.request(
            method,
            path,
            token=self._session.access_token if self._session is not None else None,
            json=json,
            params=params,
            client_ip=client.host if client else None,
            request_id=getattr(self._request.state, "request_id", None),
            idempotency_key=idempotency_key,
        )

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return (await self.call("GET", path, params=params)).body


async def api_caller(
    request: Request, session: Annotated[Session | None, Depends(current_session)]
) -> ApiCaller:
    gateway: GatewayClient = request.app.state.gateway
    return ApiCaller(gateway, request, session)


Viewer = Annotated[Session | None, Depends(current_session)]
Member = Annotated[Session, Depends(require_member)]
CsrfForm = Annotated[dict[str, str], Depends(checked_form)]
Api = Annotated[ApiCaller, Depends(api_caller)]
