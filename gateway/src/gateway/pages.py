"""Error pages at the edge: on a page path, the gateway's own refusals and failures are a small HTML
page, not a problem document.

A page path (``routes.FrontEnd``: everything outside ``/api``, ``/docs``, ``/openapi``,
``/internal``, ``/.well-known`` and the health and metrics endpoints) is only ever requested by a
browser, which would show an RFC 9457 ``application/problem+json`` body as raw JSON. So every
problem document the gateway itself answers there (429 rate limit, 405 and 501 method, 413 body,
414 query, 431 headers, 422 input guard, 502/503/504 when web is down, slow or behind an open
breaker, 500 for a bug) leaves as a page instead: same status, same headers (``Allow``,
``Retry-After``, ``X-Request-ID`` ...), ``Content-Type: text/html; charset=utf-8``,
``Cache-Control: no-store``, a link home. The gateway has no message catalog and does not know
the visitor's language, so the page says it in Korean first, then English, each part with its
``lang``. It loads nothing (no asset, no script): its one ``<style>`` is allowed by hash in the
page's own ``Content-Security-Policy``.

What web answers is relayed as it is, whatever its type: the proxy marks the request
(``mark_relayed``) before it sends web's answer, and only unmarked problem documents are turned
into pages. ``/api`` and the gateway's other paths keep their problem documents exactly.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.app import report_unexpected
from chassis.problems import PROBLEM_JSON

#: The key in ``scope["state"]`` that says the answer on its way out is the upstream's own.
RELAYED = "gateway.relayed"


def mark_relayed(scope: Scope) -> None:
    """Say that the answer about to be sent is the upstream's (web's): it passes unchanged."""
    scope.setdefault("state", {})[RELAYED] = True


@dataclass(frozen=True)
class Text:
    """What one status says, in Korean and in English."""

    ko_title: str
    ko_body: str
    en_title: str
    en_body: str


_AGAIN_KO = "잠시 후 다시 시도해 주세요."
_AGAIN_EN = "Please try again in a moment."
#: Per status; the others fall back to their class (4xx, 5xx).
TEXTS: dict[int, Text] = {
    405: Text(
        "허용되지 않는 요청 방식입니다",
        "페이지는 열어 보거나(GET) 양식으로 보낼(POST) 수만 있습니다.",
        "Method not allowed",
        "A page can only be opened (GET) or sent as a form (POST).",
    ),
    413: Text(
        "보낸 내용이 너무 큽니다",
        "양식의 내용이 받을 수 있는 크기를 넘었습니다. 내용을 줄여 다시 보내 주세요.",
        "What you sent is too large",
        "The form is larger than the site accepts. Shorten it and send it again.",
    ),
    414: Text(
        "주소가 너무 깁니다",
        "주소(URL)가 받을 수 있는 길이를 넘었습니다. 더 짧은 주소로 다시 시도해 주세요.",
        "The address is too long",
        "The address (URL) is longer than the site accepts. Try a shorter one.",
    ),
    429: Text(
        "요청이 너무 많습니다",
        "짧은 시간에 같은 네트워크 주소(IP)에서 요청이 너무 많이 왔습니다. " + _AGAIN_KO,
        "Too many requests",
        "Too many requests came from your network address in a short time. " + _AGAIN_EN,
    ),
    431: Text(
        "요청 헤더가 너무 큽니다",
        "브라우저가 보낸 헤더(대개 쿠키)가 너무 큽니다. 이 사이트의 쿠키를 지우고 다시 시도해 주세요.",
        "Request headers too large",
        "Your browser sent headers (usually cookies) larger than the site accepts. "
        "Clear this site's cookies and try again.",
    ),
    501: Text(
        "지원하지 않는 요청 방식입니다",
        "페이지는 열어 보거나(GET) 양식으로 보낼(POST) 수만 있습니다.",
        "Method not implemented",
        "A page can only be opened (GET) or sent as a form (POST).",
    ),
    502: Text(
        "페이지를 받지 못했습니다",
        "화면을 만드는 서버의 응답을 전달할 수 없었습니다. " + _AGAIN_KO,
        "The page could not be delivered",
        "The server that builds the pages gave an answer that could not be passed on. " + _AGAIN_EN,
    ),
    503: Text(
        "잠시 사용할 수 없습니다",
        "화면을 만드는 서버에 지금 연결할 수 없습니다. " + _AGAIN_KO,
        "Temporarily unavailable",
        "The server that builds the pages cannot be reached right now. " + _AGAIN_EN,
    ),
    504: Text(
        "응답 시간이 초과되었습니다",
        "페이지가 제시간에 만들어지지 않았습니다. 양식을 보냈다면 다시 보내기 전에 반영되었는지 "
        "먼저 확인해 주세요.",
        "The page took too long",
        "The page was not ready in time. If you sent a form, check whether it was saved "
        "before you send it again.",
    ),
}
_CLIENT_ERROR = Text(
    "요청을 처리할 수 없습니다",
    "이 요청은 처리할 수 없습니다. 주소를 확인해 주세요.",
    "The request cannot be processed",
    "This request cannot be processed. Check the address.",
)
_SERVER_ERROR = Text(
    "문제가 생겼습니다",
    "사이트에서 예상하지 못한 오류가 났습니다. " + _AGAIN_KO,
    "Something went wrong",
    "The site met an unexpected error. " + _AGAIN_EN,
)

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;"
    "line-height:1.6;color:#1f2328;word-break:keep-all}"
    "h1{font-size:1.4rem}section+section{margin-top:2rem;border-top:1px solid #d0d7de;"
    "padding-top:1rem}.meta{color:#59636e;font-size:.9rem}"
)
#: The page loads nothing and runs nothing; its one inline style is allowed by its hash.
CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Headers of the problem document that the page replaces; every other one is kept.
_REPLACED = frozenset(
    {b"content-type", b"content-length", b"cache-control", b"content-security-policy"}
)


def text_for(status: int) -> Text:
    return TEXTS.get(status) or (_SERVER_ERROR if status >= 500 else _CLIENT_ERROR)


def render(status: int, *, retry_after: str | None = None, request_id: str | None = None) -> bytes:
    """The page for ``status`` (UTF-8 HTML): Korean, then English, a link home, and the request
    id a visitor can quote. ``retry_after``, when it is a number of seconds (``Retry-After`` of
    a 429 or a 503), is said in both languages."""
    text = text_for(status)
    ko_wait = en_wait = ""
    if retry_after is not None and retry_after.isdigit():
        ko_wait = f"<p>{retry_after}초 뒤에 다시 시도할 수 있습니다.</p>\n"
        en_wait = f"<p>You can try again in {retry_after} s.</p>\n"
    meta = f"HTTP {status}"
    if request_id:
        meta += f" · 요청 ID / request ID: <code>{escape(request_id)}</code>"
    page = (
        '<!doctype html>\n<html lang="ko">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{status} {escape(text.ko_title)} / {escape(text.en_title)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        f'<section lang="ko">\n<h1>{escape(text.ko_title)}</h1>\n<p>{escape(text.ko_body)}</p>\n'
        f'{ko_wait}<p><a href="/">첫 화면으로 가기</a></p>\n</section>\n'
        f'<section lang="en">\n<h1>{escape(text.en_title)}</h1>\n<p>{escape(text.en_body)}</p>\n'
        f'{en_wait}<p><a href="/">Go to the home page</a></p>\n</section>\n'
        f'<p class="meta">{meta}</p>\n</main>\n</body>\n</html>\n'
    )
    return page.encode()


def page_headers(kept: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    """``kept`` (the refusal's own headers: ``Allow``, ``Retry-After`` ...) and the page's."""
    return [
        *kept,
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"content-language", b"ko, en"),
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
    ]


class PageErrorMiddleware:
    """Pure ASGI middleware: on a page path (``is_page``), a problem document the gateway
    answers itself becomes the page of its status, and an exception no one answered becomes
    the 500 page (503 for a transient infrastructure failure, as ``chassis.app`` decides).

    It sits inside the request context (so the page carries ``X-Request-ID`` and the access
    log and metrics see its status) and outside CORS and the method rules (so their 405 and
    501 are pages too). A HEAD gets the page's headers without its body."""

    def __init__(self, app: ASGIApp, is_page: Callable[[str], bool]) -> None:
        self.app = app
        self.is_page = is_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # shared with the copies inner layers make
        forwarded = False
        held: Message | None = None  # the start of a problem document being replaced

        async def pages(message: Message) -> None:
            nonlocal forwarded, held
            if message["type"] == "http.response.start":
                if not state.get(RELAYED) and _is_problem(message):
                    held = message
                    return
                forwarded = True
                await send(message)
            elif held is not None:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    start, held = held, None
                    forwarded = True
                    await self._answer(scope, send, start["status"], start.get("headers", []))
            else:
                await send(message)

        try:
            await self.app(scope, receive, pages)
        except Exception as exc:
            if forwarded:
                raise  # half an answer is out: only closing the connection can end it
            await self._answer(scope, send, report_unexpected(scope, exc), [])

    @staticmethod
    async def _answer(
        scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        kept = [(n, v) for n, v in headers if n.lower() not in _REPLACED]
        retry_after = next(
            (v.decode("latin-1") for n, v in kept if n.lower() == b"retry-after"), None
        )
        body = render(
            status, retry_after=retry_after, request_id=scope.get("state", {}).get("request_id")
        )
        await send(
            {"type": "http.response.start", "status": status, "headers": page_headers(kept, body)}
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


def _is_problem(start: Message) -> bool:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == PROBLEM_JSON.encode())
    return False
