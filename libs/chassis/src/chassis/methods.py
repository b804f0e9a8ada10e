"""HTTP method semantics (RFC 9110 §9) for every process: HEAD wherever GET is, OPTIONS and 405 with
``Allow``, 501 for a method the system does not implement.

One middleware decides, before any route runs, what a method means for a path, from the
process's own route table (the FastAPI routes, plus the gateway's proxied table):

- a method outside ``KNOWN_METHODS`` is 501 Not Implemented (§9.1: "unrecognized or not
  implemented"), whatever the path;
- on a path no route knows, the request goes on (the app's 404);
- ``OPTIONS`` is 204 with ``Allow`` (§9.3.7), without authentication: it says what the
  resource supports, nothing about its state. A CORS preflight never gets here, the CORS
  middleware outside answers it;
- ``HEAD`` on a path with GET is that GET with the body dropped (§9.3.2: the same status and
  header fields, ``Content-Length`` included), so the two cannot drift apart;
- any other method the path does not have (TRACE and CONNECT included: no route has them) is
  405 with ``Allow`` (§15.5.6).

``Allow`` lists the path's methods plus HEAD (where GET is) and OPTIONS, sorted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.problems import problem_response

#: RFC 9110 §9 and PATCH (RFC 5789). Any other method token is not implemented here (501).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

#: The methods routes are written for; the middleware passes them on as they are.
_PROBED = ("GET", "POST", "PUT", "PATCH", "DELETE")

#: The methods a path's routes declare (without the implied HEAD and OPTIONS); None when no
#: route has the path.
AllowedMethods = Callable[[str], frozenset[str] | None]


def allow_header(methods: Iterable[str]) -> str:
    """The ``Allow`` value for a resource with ``methods``: plus HEAD where GET, plus OPTIONS."""
    allowed = set(methods) | {"OPTIONS"}
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def route_methods(routes: Callable[[], Iterable[BaseRoute]]) -> AllowedMethods:
    """``AllowedMethods`` of Starlette/FastAPI routes, read at each call (routes added after
    start count). Each of GET, POST, PUT, PATCH and DELETE is tried with the routes' own
    ``matches``, the same test the router applies, so included routers and path converters
    count as they do when serving. It costs about a tenth of a millisecond, which is why the
    middleware asks only for the rare methods and for a 405."""

    def allowed(path: str) -> frozenset[str] | None:
        found: set[str] = set()
        known = False
        for method in _PROBED:
            scope = {"type": "http", "path": path, "root_path": "", "method": method}
            for route in routes():
                match, _ = route.matches(scope)
                if match is Match.FULL:
                    found.add(method)
                    known = True
                    break
                if match is Match.PARTIAL:
                    known = True
        return frozenset(found) if known else None

    return allowed


def combined(*sources: AllowedMethods) -> AllowedMethods:
    """The union of several sources; None only when none of them knows the path."""

    def allowed(path: str) -> frozenset[str] | None:
        found: frozenset[str] | None = None
        for source in sources:
            methods = source(path)
            if methods is not None:
                found = methods if found is None else found | methods
        return found

    return allowed


class MethodSemanticsMiddleware:
    """Pure ASGI middleware applying the rules of the module docstring before the routes run."""

    def __init__(self, app: ASGIApp, allowed: AllowedMethods) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        if method in _PROBED:  # the common case: the routes decide, a 405 gets the full Allow
            await self.app(scope, receive, self._complete_allow(path, send))
            return
        if method not in KNOWN_METHODS:
            response = problem_response(
                501, f"the method {method} is not implemented", instance=path
            )
            await response(scope, receive, send)
            return
        allowed = self.allowed(path)
        if allowed is None:  # the app's 404 (a HEAD's without its body)
            await self.app(scope, receive, _drop_body(send) if method == "HEAD" else send)
            return
        if method in allowed:  # a route written for OPTIONS, TRACE or CONNECT
            await self.app(scope, receive, send)
            return
        allow = allow_header(allowed)
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": _allow(allow)})
            await send({"type": "http.response.body", "body": b""})
        elif method == "HEAD" and "GET" in allowed:
            await self._head(scope, receive, send)
        else:
            response = problem_response(
                405, f"allowed methods: {allow}", instance=path, headers={"Allow": allow}
            )
            await response(scope, receive, send)

    def _complete_allow(self, path: str, send: Send) -> Send:
        """``send`` that gives a 405 the ``Allow`` of every route of the path (a router that
        stops at the first route matching the path lists that route's methods only)."""

        async def with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allowed = self.allowed(path)
                if allowed is not None:
                    headers = [(n, v) for n, v in message.get("headers", []) if n != b"allow"]
                    message = {**message, "headers": headers + _allow(allow_header(allowed))}
            await send(message)

        return with_allow

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The GET, its headers as they are (Content-Length of the GET body), its body dropped."""
        get = {**scope, "method": "GET"}
        try:
            await self.app(get, receive, _drop_body(send))
        finally:
            if "route" in get:  # the metrics label the HEAD with the route the GET matched
                scope["route"] = get["route"]


def _drop_body(send: Send) -> Send:
    async def without_body(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            message = {**message, "body": b""}
        await send(message)

    return without_body


def _allow(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"allow", value.encode("latin-1"))]
