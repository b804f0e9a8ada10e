"""Input guard: text no store can take is refused at the edge of every process (422 problem), whole kinds at once.

PostgreSQL ``text`` cannot hold U+0000, and nothing can encode a lone surrogate (U+D800 to
U+DFFF) as UTF-8: not asyncpg, not the Redis and Kafka clients, not a hash function. Such a
string reaching a store is a 500, and a 500 one client can provoke at will is a denial of
service for everyone behind the same breaker. So ``InputGuard``, an ASGI middleware installed by
``chassis.app.create_app`` in every process, refuses it before any route runs, wherever it is:

- the path, percent-decoded (``loc: ["path"]``);
- every query parameter name and value (``loc: ["query", <name>]``);
- every header value (``loc: ["header", <lower-case name>]``);
- every string of a JSON request body, object keys included (``loc: ["body", <key>, <index>, ...]``);
- every field name and value of an HTML form's body (``application/x-www-form-urlencoded``,
  ``loc: ["body", <name>]``): the web front end passes form fields on, and one of them must not
  reach its session store, its logs or a service as text no store can take.

The answer is the validation problem's shape: 422 ``application/problem+json`` with
``errors: [{loc, msg, type}]``; ``type`` is ``nul_character``, ``lone_surrogate`` or
``utf8_invalid``.

Decisions, and why:

- **Percent-encoding that is not UTF-8 is refused** (``utf8_invalid``). The server would
  otherwise decode it with U+FFFD in place of the bad bytes, so ``%FF`` and ``%FE`` would become
  the same text, silently: a search, a slug or an id compared after that is not what the client
  sent. RFC 3986 §2.5 makes UTF-8 the encoding of new URI schemes. A strict UTF-8 decoder also
  refuses an encoded surrogate (``%ED%A0%80``), so a path or query can never carry one.
- **Header values are bytes** that Starlette reads as Latin-1, so every byte becomes a code point
  a store can take except 0x00, and no surrogate can arise: only NUL is looked for. (h11 and
  httptools already refuse NUL in a header line; an in-process client or another server may not.)
- **A JSON body is looked at only where it could hide such text.** A NUL or a lone surrogate can
  be written in valid JSON only as a ``\\u0000`` or ``\\uD800``-``\\uDFFF`` escape, or sent as
  the raw UTF-8-like bytes of a surrogate, which Python's ``json`` decodes with ``surrogatepass``
  into a lone surrogate. So the body is parsed and walked only when a byte search finds a
  backslash or the byte 0xED and a regular expression then finds such an escape or bytes; the
  common body costs a few ``memchr`` calls (see ``benchmarks/input_guard_bench.py``). A raw NUL
  byte is refused at once: it is never valid in UTF-8 JSON, and it marks UTF-16 or UTF-32, which
  RFC 8259 §8.1 excludes and whose escapes the byte search would miss. A body that is not JSON
  (or not UTF-8) is left to the app, whose own 422 (``json_invalid``) or 400 says more. The body
  is buffered (the route reads it whole anyway) and replayed to the app unchanged. Only
  ``application/json`` and ``application/*+json`` bodies are looked at, and forms: those are
  the only ones the processes parse (a JSON model, the web front end's forms). A form's
  syntax is the query string's, checked the same way. A buffered body is bounded (413 past
  ``max_body_bytes``).
- **The gateway checks the path, the query and the headers, not bodies** (``check_bodies=False``).
  It routes on the path and query and keys rate limits, logs and forwarded headers on them, so
  those are checked there; but it never parses or stores a body: it forwards the bytes to a
  service that runs this same guard. Buffering and scanning every body twice would double the
  cost for nothing, and the service's refusal is a 422, which is not an upstream failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.problems import problem_response

#: The buffered JSON body of one request is bounded like the gateway's ``MAX_BODY_BYTES``.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: At most this many errors are listed in one answer (the first ones found).
MAX_ERRORS = 20

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
#: A JSON escape that decodes to NUL or to a surrogate (a valid surrogate pair is told apart by
#: the parse that follows a match); one literal prefix, so the regex engine skips ahead fast.
_BAD_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")
#: The UTF-8-like bytes of a surrogate (ED A0..BF), which Python's json passes through.
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")

Loc = tuple[str | int, ...]
NUL_TYPE = "nul_character"


@dataclass(frozen=True)
class InputError:
    """One refused input: where (``loc``), why (``msg``) and the kind (``type``)."""

    loc: Loc
    msg: str
    type: str

    def as_json(self) -> dict[str, Any]:
        loc = [printable(part) if isinstance(part, str) else part for part in self.loc]
        return {"loc": loc, "msg": self.msg, "type": self.type}


def printable(text: str) -> str:
    """``text`` with NUL and surrogates written as ``\\uXXXX``, so the answer itself can be encoded."""
    return _BAD_CHAR.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def text_error(loc: Loc, text: str) -> InputError | None:
    """The error for ``text`` at ``loc`` if a store cannot take it, else None."""
    found = _BAD_CHAR.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return InputError(loc, "must not contain NUL (U+0000)", NUL_TYPE)
    return InputError(loc, "must not contain a lone surrogate (U+D800-U+DFFF)", "lone_surrogate")


def _utf8_error(loc: Loc, what: str) -> InputError:
    return InputError(loc, f"{what} must be valid UTF-8", "utf8_invalid")


def _percent_decoded(raw: bytes) -> str | None:
    """``raw`` percent-decoded as strict UTF-8, or None when the bytes are not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def path_errors(scope: Scope) -> list[InputError]:
    raw = scope.get("raw_path")
    if raw is None:  # an ASGI server may leave it out: the decoded path is all there is
        error = text_error(("path",), scope.get("path", ""))
        return [error] if error else []
    if raw.isascii() and b"%" not in raw and b"\x00" not in raw:
        return []
    text = _percent_decoded(raw)
    if text is None:
        return [_utf8_error(("path",), "the percent-encoded path")]
    error = text_error(("path",), text)
    return [error] if error else []


def query_errors(query: bytes, where: str = "query") -> list[InputError]:
    """Each parameter of ``query`` (``a=1&b=2``, ``+`` for space) as Starlette splits it;
    ``where`` names it in ``loc`` (``"body"`` for a form body, which has the same syntax)."""
    if not query or (query.isascii() and b"%" not in query and b"\x00" not in query):
        return []
    errors: list[InputError] = []
    for piece in query.split(b"&"):
        if not piece:
            continue
        raw_name, _, raw_value = piece.partition(b"=")
        name = _percent_decoded(raw_name.replace(b"+", b" "))
        value = _percent_decoded(raw_value.replace(b"+", b" "))
        label = name if name is not None else unquote_to_bytes(raw_name).decode("utf-8", "replace")
        if name is None or value is None:
            what = (
                "a percent-encoded form field"
                if where == "body"
                else "a percent-encoded query parameter"
            )
            errors.append(_utf8_error((where, label), what))
            continue
        error = text_error((where, label), name) or text_error((where, label), value)
        if error is not None:
            errors.append(error)
    return errors


def header_errors(headers: list[tuple[bytes, bytes]]) -> list[InputError]:
    return [
        InputError(("header", name.decode("latin-1")), "must not contain NUL (U+0000)", NUL_TYPE)
        for name, value in headers
        if b"\x00" in value or b"\x00" in name
    ]


def _walk(value: Any, loc: Loc) -> Iterator[InputError]:
    """Every bad string of a parsed document, in document order (object keys before values).

    Iterative on purpose: a client chooses the nesting depth, and a recursive walk would end
    in a ``RecursionError`` (a 500) for a deep enough document."""
    # A stack of (where, what); pushed in reverse so that it pops in document order. A JSON
    # object key is a string, so pushing it as one checks it without descending into it.
    pending: list[tuple[Loc, Any]] = [(loc, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            error = text_error(where, item)
            if error is not None:
                yield error
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                pending.append(((*where, key), child))
                pending.append(((*where, key), key))
        elif isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                pending.append(((*where, index), item[index]))


def body_errors(body: bytes) -> list[InputError]:
    """The strings of a JSON body that a store cannot take (keys included). Malformed JSON is
    not reported here: the app's own validation answers it."""
    if body.find(b"\x00") != -1:
        # Never in UTF-8 JSON (a raw control character is invalid there); in UTF-16 or UTF-32,
        # which Python's json would decode, a NUL escape would not be seen by the search below.
        return [InputError(("body",), "a JSON body must be UTF-8 text", "utf8_invalid")]
    # The common case is decided at memchr speed: no backslash, no 0xED byte.
    escaped = body.find(b"\\") != -1 and _BAD_ESCAPE.search(body) is not None
    if not escaped and (body.find(b"\xed") == -1 or _SURROGATE_BYTES.search(body) is None):
        return []
    try:
        document = json.loads(body)  # as the app will: raw surrogate bytes pass as surrogates
    except (ValueError, RecursionError):
        # Malformed, or nested deeper than Python's json can parse: the app's own parse of the
        # same bytes fails too (it runs deeper in the stack) and answers 400, never a 500.
        return []
    errors: list[InputError] = []
    for error in _walk(document, ("body",)):
        errors.append(error)
        if len(errors) == MAX_ERRORS:
            break
    return errors


def form_errors(body: bytes) -> list[InputError]:
    """The fields of an ``application/x-www-form-urlencoded`` body a store cannot take
    (``loc: ["body", <name>]``): a percent-encoded NUL, or bytes that are not UTF-8 (a strict
    decoder also refuses an encoded surrogate, so none can arise)."""
    return query_errors(body, "body")[:MAX_ERRORS]


def is_form(content_type: bytes) -> bool:
    """``application/x-www-form-urlencoded``, parameters ignored."""
    return content_type.split(b";", 1)[0].strip().lower() == b"application/x-www-form-urlencoded"


def is_json(content_type: bytes) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters ignored (as FastAPI)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class InputGuard:
    """ASGI middleware: refuse a request carrying text no store can take (see the module doc).

    ``check_bodies`` turns the JSON body check on (services) or off (the gateway, which forwards
    bodies to services that check them); ``max_body_bytes`` bounds the buffered body (413)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        check_bodies: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.check_bodies = check_bodies
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        errors = path_errors(scope) + query_errors(scope.get("query_string", b""))
        errors += header_errors(headers)
        if errors:
            await self._refuse(scope, receive, send, errors)
            return
        content_type = next((v for k, v in headers if k == b"content-type"), None)
        check = None
        if self.check_bodies and content_type is not None:
            check = body_errors if is_json(content_type) else None
            check = form_errors if is_form(content_type) else check
        if check is None:
            await self.app(scope, receive, send)
            return
        body, disconnect = await self._read(receive)
        if body is None:
            await self._answer(scope, receive, send, 413, "the request body is too large")
            return
        errors = check(body) if disconnect is None else []
        if errors:
            await self._refuse(scope, receive, send, errors)
            return
        await self.app(scope, _replay(body, disconnect, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes | None, Message | None]:
        """The whole body (None past the bound) and a disconnect seen while reading it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), message  # the client went away: the app sees it too
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, errors: list[InputError]
    ) -> None:
        extra = {"errors": [error.as_json() for error in errors[:MAX_ERRORS]]}
        await self._answer(scope, receive, send, 422, "the request is not valid", extra)

    @staticmethod
    async def _answer(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        detail: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        instance = printable(scope.get("path", ""))
        await problem_response(status, detail, instance=instance, extra=extra)(scope, receive, send)


def _replay(body: bytes, disconnect: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the buffered body as one message, then carries on.

    After a disconnect the app sees what it would have seen without the guard: the part of the
    body that arrived, then the disconnect."""
    more = disconnect is not None
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]
    if disconnect is not None:
        pending.append(disconnect)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
