"""Benchmark of the chassis input guard: what it adds to a request with a 20 KB JSON body.

Not a test: run it by hand (no infrastructure needed)::

    uv run python benchmarks/input_guard_bench.py [--size 20000] [--requests 5000]

Each body is sent straight into the ASGI callable (no server, no network) of an app that reads
the whole body, once bare and once wrapped in ``InputGuard``; the difference is the guard's own
cost: buffering and replaying the body, the UTF-8 decode, the escape search and, for a body
with ``\\u`` escapes of NUL or a surrogate, the parse and walk. It prints µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.input_guard import InputGuard


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body to its end, as a route with a JSON body does, and answers 204."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def bodies(size: int) -> dict[str, bytes]:
    def fill(unit: str, ensure_ascii: bool) -> bytes:
        encoded = len(json.dumps(unit, ensure_ascii=ensure_ascii).encode()) - 2  # no quotes
        text = unit * (size // encoded)
        document = {"title": "benchmark", "content": text}
        return json.dumps(document, ensure_ascii=ensure_ascii).encode()

    return {
        "empty object": b"{}",
        "ASCII text": fill("lorem ipsum ", True),
        "Korean text, UTF-8": fill("가나다라 ", False),
        "Korean text, \\u escapes": fill("가나다라 ", True),
        "\\u0000 at the end (refused)": fill("lorem ipsum ", True)[:-2] + b'\\u0000"}',
    }


async def per_request(app: ASGIApp, body: bytes, requests: int) -> float:
    """Mean µs of one request with ``body`` through ``app``."""
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/questions",
        "raw_path": b"/api/questions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"bench")],
    }

    async def send(message: Message) -> None:
        return None

    def receiver() -> Callable[[], object]:
        chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]

        async def receive() -> Message:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        return receive

    for _ in range(min(200, requests)):  # warm up
        await app(scope, receiver(), send)  # type: ignore[arg-type]
    start = time.perf_counter()
    for _ in range(requests):
        await app(scope, receiver(), send)  # type: ignore[arg-type]
    return (time.perf_counter() - start) / requests * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000, help="body size in bytes")
    parser.add_argument("--requests", type=int, default=5_000)
    args = parser.parse_args()
    guarded = InputGuard(reading_app)
    print(f"{'body':34} {'bytes':>7} {'bare µs':>9} {'guarded µs':>11} {'added µs':>9}")
    for name, body in bodies(args.size).items():
        bare = await per_request(reading_app, body, args.requests)
        guard = await per_request(guarded, body, args.requests)
        print(f"{name:34} {len(body):>7} {bare:>9.1f} {guard:>11.1f} {guard - bare:>9.1f}")


if __name__ == "__main__":
    asyncio.run(main())
