"""Response security headers (defence in depth for a server-rendered site): no framing by another site (clickjacking), a Content Security Policy that runs only web's own script and style, no MIME sniffing, no cross-site Referer."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Only web's own files run or style a page (``/static``: no inline script, event handler or
#: ``style`` attribute anywhere in the templates); images may be ``data:`` URLs; no plugin;
#: no ``<base>``; forms post only here; and no page may be framed, by any origin
#: (``frame-ancestors``, CSP Level 2, with ``X-Frame-Options`` for browsers before it): a
#: framed "Withdraw" button under a decoy is the clickjacking attack (OWASP, Clickjacking
#: Defense Cheat Sheet).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    # a link to another site does not carry the page's path (a question id, a saga id)
    (b"referrer-policy", b"same-origin"),
    # a file is what its Content-Type says (no script sniffed out of a text answer)
    (b"x-content-type-options", b"nosniff"),
)
_NAMES = frozenset(name for name, _ in HEADERS)


class SecurityHeadersMiddleware:
    """ASGI middleware: every response web sends carries ``HEADERS`` (a page's own value of
    one of them is replaced: the policy is the site's, not a page's)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message = {**message, "headers": headers + list(HEADERS)}
            await send(message)

        await self.app(scope, receive, with_headers)
