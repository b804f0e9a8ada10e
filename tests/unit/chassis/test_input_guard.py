"""The input guard's rules (text no store can take) and its body replay, without any server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from chassis.input_guard import InputGuard, body_errors, form_errors, path_errors, query_errors


def kinds(errors: list[Any]) -> list[tuple[list[Any], str]]:
    return [(e.as_json()["loc"], e.type) for e in errors]


@pytest.mark.parametrize(
    "body",
    [
        b'{"title":"plain","n":1}',
        '{"t":"가나다 \\ud83d\\ude00 pair"}'.encode(),  # a valid surrogate pair is one character
        b'{"t":"\\\\u0000 is text here"}',  # an escaped backslash, then the letters u0000
        '{"t":"한글 텍스트"}'.encode(),
        b"{not json \\u0000",  # malformed: the app's own 422 says more
    ],
)
def test_bodies_a_store_can_take_pass(body: bytes) -> None:
    assert body_errors(body) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"email":"a\\u0000b"}', [(["body", "email"], "nul_character")]),
        (b'{"email":"a\\uD800b"}', [(["body", "email"], "lone_surrogate")]),
        (b'{"a":[{"b":"x\\udfff"}]}', [(["body", "a", 0, "b"], "lone_surrogate")]),
        (b'{"k\\u0000":1}', [(["body", "k\\u0000"], "nul_character")]),
        (b'{"email":"a\xed\xa0\x80b"}', [(["body", "email"], "lone_surrogate")]),
        ('{"t":"x"}'.encode("utf-16"), [(["body"], "utf8_invalid")]),
    ],
)
def test_bodies_with_text_a_store_cannot_take_are_named(body: bytes, expected: Any) -> None:
    assert kinds(body_errors(body)) == expected


def test_errors_come_in_document_order_keys_before_their_values() -> None:
    body = b'{"k\\u0000":"\\u0000","b":["\\ud800","ok",{"c":"\\udc00"}]}'
    assert kinds(body_errors(body)) == [
        (["body", "k\\u0000"], "nul_character"),
        (["body", "k\\u0000"], "nul_character"),
        (["body", "b", 0], "lone_surrogate"),
        (["body", "b", 2, "c"], "lone_surrogate"),
    ]


#: Deeper than Python's json parser goes (about 1,000 levels) and than a recursive walk of
#: its result could: the nesting depth is the client's choice.
TOO_DEEP = 5000


def test_a_body_nested_past_the_parser_limit_is_left_to_the_app() -> None:
    """Kind: a client-chosen nesting depth (RecursionError) must not become a 500.

    With a NUL escape inside, the guard parses the body; the parse fails with a RecursionError,
    not a ValueError, and escaped the guard as a 500. The app's own parse refuses it (400)."""
    body = b'{"email":' + b"[" * TOO_DEEP + b'"\\u0000"' + b"]" * TOO_DEEP + b"}"
    assert body_errors(body) == []


async def test_the_guard_passes_a_too_deep_body_to_the_app_instead_of_failing() -> None:
    app = Recorder()
    body = b"[" * TOO_DEEP + b'"\\ud800"' + b"]" * TOO_DEEP
    status, _ = await call(InputGuard(app), [body])
    assert status == 204
    assert app.body == body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"q=hello+world&page=2", []),
        (b"q=%ED%95%9C", []),  # 한, UTF-8
        (b"q=a%00", [(["query", "q"], "nul_character")]),
        (b"q=%ff", [(["query", "q"], "utf8_invalid")]),
        (b"q=%ed%a0%80", [(["query", "q"], "utf8_invalid")]),  # an encoded surrogate
        (b"x%00=1", [(["query", "x\\u0000"], "nul_character")]),
        (b"a=1&&b=%00", [(["query", "b"], "nul_character")]),
    ],
)
def test_query_parameters(query: bytes, expected: Any) -> None:
    assert kinds(query_errors(query)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/api/posts/123", []),
        (b"/api/boards/%ED%95%9C", []),
        (b"/api/posts/%00", [(["path"], "nul_character")]),
        (b"/api/posts/%c3%28", [(["path"], "utf8_invalid")]),
    ],
)
def test_paths(raw: bytes, expected: Any) -> None:
    assert kinds(path_errors({"raw_path": raw, "path": ""})) == expected


class Recorder:
    """An ASGI app that reads the whole body and answers 204; remembers what it received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages)


async def call(
    guard: InputGuard, chunks: list[bytes], *, content_type: bytes = b"application/json"
) -> tuple[int, Any]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(b"content-type", content_type)],
    }
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), json.loads(body) if body else None


async def test_a_chunked_body_reaches_the_app_unchanged() -> None:
    app = Recorder()
    chunks = [b'{"title":"', "한글".encode()[:4], "한글".encode()[4:] + b'"}']
    status, _ = await call(InputGuard(app), chunks)
    assert status == 204
    assert app.body == b"".join(chunks)


async def test_a_refused_body_never_reaches_the_app() -> None:
    app = Recorder()
    status, problem = await call(InputGuard(app), [b'{"t":"\\u0000"}'])
    assert status == 422
    assert problem["errors"] == [
        {"loc": ["body", "t"], "msg": problem["errors"][0]["msg"], "type": "nul_character"}
    ]
    assert app.messages == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"csrf_token=abc&title=plain+text", []),
        (b"title=%ED%95%9C%EA%B8%80&n=1", []),  # percent-encoded UTF-8 (한글)
        (b"title=a%00b", [(["body", "title"], "nul_character")]),
        (b"ti%00tle=x", [(["body", "ti\\u0000tle"], "nul_character")]),
        (b"title=%FF", [(["body", "title"], "utf8_invalid")]),
        (b"title=%ED%A0%80", [(["body", "title"], "utf8_invalid")]),  # an encoded surrogate
        (b"a=\x00", [(["body", "a"], "nul_character")]),  # a raw NUL byte
    ],
)
def test_form_fields(body: bytes, expected: Any) -> None:
    assert kinds(form_errors(body)) == expected


async def test_a_form_body_with_a_nul_is_refused_before_the_app() -> None:
    app = Recorder()
    form = b"application/x-www-form-urlencoded; charset=utf-8"
    status, problem = await call(InputGuard(app), [b"csrf_token=t&title=a%00"], content_type=form)
    assert status == 422
    assert [e["loc"] for e in problem["errors"]] == [["body", "title"]]
    assert app.messages == []
    status, _ = await call(InputGuard(app), [b"csrf_token=t&title=ok"], content_type=form)
    assert status == 204
    assert app.body == b"csrf_token=t&title=ok"


async def test_other_content_types_and_the_gateway_mode_pass_bodies_through() -> None:
    for guard, content_type in [
        (InputGuard(Recorder()), b"text/plain"),
        (InputGuard(Recorder(), check_bodies=False), b"application/json"),
    ]:
        status, _ = await call(guard, [b'{"t":"\\u0000"}'], content_type=content_type)
        assert status == 204


async def test_a_body_past_the_bound_is_413() -> None:
    status, problem = await call(InputGuard(Recorder(), max_body_bytes=10), [b"{" + b" " * 20])
    assert status == 413
    assert problem["status"] == 413


async def test_a_client_gone_mid_body_is_passed_on_as_without_the_guard() -> None:
    app = Recorder()
    guard = InputGuard(app)
    scope = {
        "type": "http",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    pending: list[Message] = [
        {"type": "http.request", "body": b'{"a', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        return None

    await guard(scope, receive, send)
    assert [m["type"] for m in app.messages] == ["http.request", "http.disconnect"]
    assert app.body == b'{"a'
