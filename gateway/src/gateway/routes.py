"""API gateway routing: one declarative table maps every public method and path to its upstream.

Read the table top to bottom to see the whole public surface of the system (docs/services/*.md,
docs/sagas.md), plus two additive endpoints the services publish (the member a sign-up's
``Location`` points at, and the list of fault flags). Beside the table, one fallback: the web
front end (``FRONT_END``) serves every page path, a path outside the reserved prefixes
(``/api``, ``/docs``, ``/openapi``, ``/internal``, ``/.well-known`` and the health and metrics
endpoints). Nothing else is routed: an unknown path under a reserved prefix is a 404, a known
path with another method a 405, and no ``/internal/**`` path of any service is reachable from
outside. The table and the fallback are also the source of ``Allow`` (OPTIONS, 405) and of HEAD
wherever a GET is (``chassis.methods``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, auto
from urllib.parse import quote

from chassis.methods import allow_header
from chassis.problems import NotFound, Problem


class Access(Enum):
    """What the edge demands before forwarding."""

    PUBLIC = auto()  # no token needed; a valid one still keys the rate limit by user
    TOKEN = auto()  # a valid access token, or 401 at the edge
    #: The token is not read at all and not forwarded; the caller is counted by its address.
    #: The web front end's pages: a browser sends its session cookie, never a bearer token, and
    #: a stale one sent along must not lock a page (nor reach a process that never checks it).
    ANONYMOUS = auto()


@dataclass(frozen=True)
class Route:
    """One public endpoint: ``method path`` is served by ``upstream`` at the same path."""

    method: str
    path: str
    upstream: str
    access: Access
    timeout: float | None = None  # seconds for the whole exchange; None: UPSTREAM_TIMEOUT_SECONDS
    #: False for a PUBLIC route whose upstream ignores the Authorization header (sign-up and
    #: the session routes): a revoked token sent along there is not refused at the edge.
    reads_token: bool = True

    @property
    def name(self) -> str:
        """The route's label in metrics and logs, e.g. ``GET /api/posts/{post_id}``."""
        return f"{self.method} {self.path}"


MEMBER, BOARD, QNA, SAGA, WEB = "member", "board", "qna", "saga", "web"
#: The services behind the API, each with its OpenAPI document (``docs.py``).
SERVICES = (MEMBER, BOARD, QNA, SAGA)
#: Everything the gateway forwards to: the services and the web front end (which has no API).
UPSTREAMS = (*SERVICES, WEB)
PUBLIC, TOKEN, ANONYMOUS = Access.PUBLIC, Access.TOKEN, Access.ANONYMOUS
#: Password hashing (argon2) and the synchronous pre-check before a saga starts take longer.
SLOW = 10.0

# fmt: off
ROUTES: tuple[Route, ...] = (
    # member: accounts and sessions
    Route("POST",   "/api/members",                                 MEMBER, PUBLIC, SLOW, reads_token=False),
    Route("POST",   "/api/auth/login",                              MEMBER, PUBLIC, SLOW, reads_token=False),
    Route("POST",   "/api/auth/refresh",                            MEMBER, PUBLIC, reads_token=False),
    Route("POST",   "/api/auth/logout",                             MEMBER, PUBLIC, reads_token=False),
    Route("GET",    "/api/members/me",                              MEMBER, TOKEN),
    Route("PATCH",  "/api/members/me",                              MEMBER, TOKEN,  SLOW),
    Route("GET",    "/api/members/me/activity",                     MEMBER, TOKEN),
    Route("GET",    "/api/members/{member_id}",                     MEMBER, TOKEN),   # a sign-up's Location

    # board: boards, posts and their comments
    Route("GET",    "/api/boards",                                  BOARD,  PUBLIC),
    Route("POST",   "/api/boards",                                  BOARD,  TOKEN),
    Route("GET",    "/api/boards/{board_id}/posts",                 BOARD,  PUBLIC),
    Route("POST",   "/api/boards/{board_id}/posts",                 BOARD,  TOKEN),
    Route("GET",    "/api/posts",                                   BOARD,  PUBLIC),
    Route("GET",    "/api/posts/{post_id}",                         BOARD,  PUBLIC),
    Route("PATCH",  "/api/posts/{post_id}",                         BOARD,  TOKEN),
    Route("DELETE", "/api/posts/{post_id}",                         BOARD,  TOKEN),
    Route("GET",    "/api/posts/{post_id}/comments",                BOARD,  PUBLIC),
    Route("POST",   "/api/posts/{post_id}/comments",                BOARD,  TOKEN),
    Route("PATCH",  "/api/posts/{post_id}/comments/{comment_id}",   BOARD,  TOKEN),
    Route("DELETE", "/api/posts/{post_id}/comments/{comment_id}",   BOARD,  TOKEN),

    # qna: questions, answers and their comments
    Route("GET",    "/api/questions",                               QNA,    PUBLIC),
    Route("POST",   "/api/questions",                               QNA,    TOKEN),
    Route("GET",    "/api/questions/{qid}",                         QNA,    PUBLIC),
    Route("PATCH",  "/api/questions/{qid}",                         QNA,    TOKEN),
    Route("DELETE", "/api/questions/{qid}",                         QNA,    TOKEN),
    Route("POST",   "/api/questions/{qid}/answers",                 QNA,    TOKEN),
    Route("PATCH",  "/api/questions/{qid}/answers/{aid}",           QNA,    TOKEN),
    Route("DELETE", "/api/questions/{qid}/answers/{aid}",           QNA,    TOKEN),
    Route("GET",    "/api/questions/{qid}/comments",                QNA,    PUBLIC),
    Route("POST",   "/api/questions/{qid}/comments",                QNA,    TOKEN),
    Route("PATCH",  "/api/questions/{qid}/comments/{cid}",          QNA,    TOKEN),
    Route("DELETE", "/api/questions/{qid}/comments/{cid}",          QNA,    TOKEN),

    # saga: the requests that start a saga, its status, and the fault-injection switches
    Route("DELETE", "/api/members/me",                              SAGA,   TOKEN,  SLOW),
    Route("POST",   "/api/questions/{qid}/answers/{aid}/accept",    SAGA,   TOKEN,  SLOW),
    Route("GET",    "/api/sagas/{saga_id}",                         SAGA,   TOKEN),
    Route("GET",    "/api/admin/faults",                            SAGA,   TOKEN),   # the flags that are on
    Route("PUT",    "/api/admin/faults/{service}/{command}",        SAGA,   TOKEN),
)
# fmt: on


class MethodNotAllowed(Problem):
    """405 with ``Allow``: the path's methods plus HEAD (where GET) and OPTIONS (RFC 9110 §15.5.6)."""

    status = 405

    def __init__(self, allowed: Iterable[str]) -> None:
        methods = allow_header(allowed)
        super().__init__(f"allowed methods: {methods}", headers={"Allow": methods})


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    upstream_path: str  # the path to request upstream, parameters re-encoded


_PARAM = re.compile(r"\{([a-z_]+)\}")
#: A segment that needs no percent-encoding (every UUID): the common, fast case.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~\-]+").fullmatch


class _Template:
    """One path template compiled once: a regex with one group per ``{param}``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pieces = _PARAM.split(path)  # literal, name, literal, name, ..., literal
        pattern = "".join(
            re.escape(piece) if i % 2 == 0 else "([^/]+)" for i, piece in enumerate(self.pieces)
        )
        self.regex = re.compile(f"^{pattern}$")
        self.by_method: dict[str, Route] = {}

    def upstream_path(self, path: str) -> str | None:
        """The upstream path for ``path`` (already percent-decoded), or None if it does not fit."""
        found = self.regex.match(path)
        if found is None:
            return None
        params = found.groups()
        if any(p in (".", "..") for p in params):
            return None  # a dot segment would be normalised away on the way upstream
        if all(_PLAIN_SEGMENT(p) for p in params):
            return path
        pieces = list(self.pieces)
        pieces[1::2] = [quote(p, safe="") for p in params]
        return "".join(pieces)


#: First path segments that never reach the front end, whatever their case: the API and the
#: gateway's own endpoints (``/docs``, ``/openapi/{name}.json``, health and metrics), and the
#: names whose meaning is fixed elsewhere (``/internal/**`` of every service, ``/.well-known``,
#: RFC 8615), so an unknown path there stays the gateway's 404 problem, never an HTML page.
RESERVED = frozenset(
    {"api", "docs", "openapi", "internal", ".well-known", "healthz", "readyz", "metrics"}
)
#: Characters a page path may carry as they are (the ``/`` separator and RFC 3986 ``pchar``
#: without ``%``); any other one is percent-encoded again on the way to the front end.
_PCHAR_SAFE = "/!$&'()*+,;=:@-._~"
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/\-]+").fullmatch


@dataclass(frozen=True)
class FrontEnd:
    """The fallback after the table: every page path goes to ``upstream`` (the web front end).

    A page path is ``/``, or a path of non-empty segments other than ``.`` and ``..`` whose
    first segment is not in ``reserved``. Such a path is matched by one pseudo-route per method,
    named ``GET /{page...}`` / ``POST /{page...}`` in metrics, spans and logs, so the labels stay
    bounded however many pages there are. Its access is ``ANONYMOUS``: the browser
    authenticates to the front end with its session cookie; cookies, ``Set-Cookie``,
    ``Location`` and bodies pass both ways unchanged like on any route (the pool follows no
    redirect). The deadline is ``WEB_TIMEOUT_SECONDS`` (``config.py``).
    """

    upstream: str
    methods: tuple[str, ...] = ("GET", "POST")
    reserved: frozenset[str] = RESERVED
    path: str = "/{page...}"

    def routes(self) -> dict[str, Route]:
        """The pseudo-routes by method."""
        return {
            method: Route(method, self.path, self.upstream, ANONYMOUS, reads_token=False)
            for method in self.methods
        }

    def upstream_path(self, path: str) -> str | None:
        """The path to request from the front end for ``path`` (percent-decoded, as ASGI gives
        it), re-encoded so a decoded ``?``, ``#`` or ``%`` stays part of the path; None when
        ``path`` is no page path."""
        if path == "/":
            return path
        first, slash, rest = path.partition("/")
        if first or not slash:
            return None  # not an absolute path (an ASGI server gives one; a test may not)
        segments = rest.split("/")
        if segments[0].lower() in self.reserved:
            return None
        if any(segment in ("", ".", "..") for segment in segments):
            # an empty segment (``//api/boards``, a trailing slash) or a dot segment would be
            # read, or normalised away, differently by the next hop than it was checked here
            return None
        return path if _PLAIN_PATH(path) else quote(path, safe=_PCHAR_SAFE)


class RouteTable:
    """The table, indexed for the hot path: a dict for static paths, then the templates with the
    same number of segments; then, for a path the table does not know, the front end."""

    def __init__(self, routes: Iterable[Route], front_end: FrontEnd | None = None) -> None:
        self.routes = tuple(routes)
        self.front_end = front_end
        self._front_routes = front_end.routes() if front_end is not None else {}
        self._static: dict[str, dict[str, Route]] = {}
        templates: dict[str, _Template] = {}
        for route in self.routes:
            if "{" not in route.path:
                by_method = self._static.setdefault(route.path, {})
            else:
                by_method = templates.setdefault(route.path, _Template(route.path)).by_method
            if route.method in by_method:
                raise ValueError(f"duplicate route {route.name}")
            by_method[route.method] = route
        self._dynamic: dict[int, list[_Template]] = {}
        for template in templates.values():
            self._dynamic.setdefault(template.path.count("/"), []).append(template)

    @property
    def methods(self) -> frozenset[str]:
        """Every method some route or the front end has (CORS allows these)."""
        return frozenset(route.method for route in self.routes) | frozenset(self._front_routes)

    def _lookup(self, path: str) -> tuple[dict[str, Route], str] | None:
        """The path's routes by method, and the path to request upstream; None if unknown."""
        by_method = self._static.get(path)
        if by_method is not None:
            return by_method, path
        for template in self._dynamic.get(path.count("/"), ()):
            target = template.upstream_path(path)
            if target is not None:
                return template.by_method, target
        if self.front_end is not None:
            target = self.front_end.upstream_path(path)
            if target is not None:
                return self._front_routes, target
        return None

    def is_page(self, path: str) -> bool:
        """True when ``path`` (percent-decoded, as ASGI gives it) is a page path, one the front
        end serves: the gateway's own answers there are HTML pages (``pages.py``)."""
        if self.front_end is None or self.front_end.upstream_path(path) is None:
            return False  # the common case at the API (a reserved first segment), decided cheaply
        found = self._lookup(path)
        return found is not None and found[0] is self._front_routes

    def allowed(self, path: str) -> frozenset[str] | None:
        """The methods the table has for ``path`` (``chassis.methods.AllowedMethods``: the
        source of ``Allow`` for OPTIONS, HEAD and 405); None when the path is not routed."""
        found = self._lookup(path)
        return None if found is None else frozenset(found[0])

    def resolve(self, method: str, path: str) -> RouteMatch:
        """The route for ``method path``; raises NotFound (404) or MethodNotAllowed (405)."""
        found = self._lookup(path)
        if found is None:
            raise NotFound("no such endpoint")
        by_method, target = found
        route = by_method.get(method)
        if route is None:
            raise MethodNotAllowed(by_method)
        return RouteMatch(route, target)


FRONT_END = FrontEnd(WEB)
TABLE = RouteTable(ROUTES, FRONT_END)
