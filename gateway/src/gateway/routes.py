"""API gateway routing: one declarative table maps every public method and path to its upstream.

Read the table top to bottom to see the whole public surface of the system (docs/services/*.md,
docs/sagas.md), plus two additive endpoints the services publish (the member a sign-up's
``Location`` points at, and the list of fault flags). Nothing else is routed: an unknown path is a
404, a known path with another method a 405, and no ``/internal/**`` path of any service is
reachable from outside. The table is also the source of ``Allow`` (OPTIONS, 405) and of HEAD
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


MEMBER, BOARD, QNA, SAGA = "member", "board", "qna", "saga"
UPSTREAMS = (MEMBER, BOARD, QNA, SAGA)
PUBLIC, TOKEN = Access.PUBLIC, Access.TOKEN
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


class RouteTable:
    """The table, indexed for the hot path: a dict for static paths, then the templates with the
    same number of segments."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
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
        """Every method some route has (CORS allows these)."""
        return frozenset(route.method for route in self.routes)

    def _lookup(self, path: str) -> tuple[dict[str, Route], str] | None:
        """The path's routes by method, and the path to request upstream; None if unknown."""
        by_method = self._static.get(path)
        if by_method is not None:
            return by_method, path
        for template in self._dynamic.get(path.count("/"), ()):
            target = template.upstream_path(path)
            if target is not None:
                return template.by_method, target
        return None

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


TABLE = RouteTable(ROUTES)
