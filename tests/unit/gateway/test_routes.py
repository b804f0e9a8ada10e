"""The route table: every public endpoint is routed to its service, every page path to the web front
end, nothing else."""

from __future__ import annotations

import pytest

from chassis.problems import NotFound
from gateway.routes import (
    ANONYMOUS,
    FRONT_END,
    ROUTES,
    TABLE,
    TOKEN,
    MethodNotAllowed,
    Route,
    RouteTable,
)

QID = "5b0b3f0e-2f6f-4d7e-9f1c-0d6a1c1e2a3b"
AID = "0c7d2a8e-8d55-4f0e-bb1a-3f7b5c9e1d20"

#: The public contract (docs/services/*.md, docs/sagas.md), endpoint by endpoint, with the service
#: that owns it.
CONTRACT = [
    ("POST", "/api/members", "member"),
    ("POST", "/api/auth/login", "member"),
    ("POST", "/api/auth/refresh", "member"),
    ("POST", "/api/auth/logout", "member"),
    ("GET", "/api/members/me", "member"),
    ("PATCH", "/api/members/me", "member"),
    ("GET", "/api/members/me/activity", "member"),
    ("DELETE", "/api/members/me", "saga"),
    ("GET", "/api/boards", "board"),
    ("POST", "/api/boards", "board"),
    ("GET", f"/api/boards/{QID}/posts", "board"),
    ("POST", f"/api/boards/{QID}/posts", "board"),
    ("GET", "/api/posts", "board"),
    ("GET", f"/api/posts/{QID}", "board"),
    ("PATCH", f"/api/posts/{QID}", "board"),
    ("DELETE", f"/api/posts/{QID}", "board"),
    ("GET", f"/api/posts/{QID}/comments", "board"),
    ("POST", f"/api/posts/{QID}/comments", "board"),
    ("PATCH", f"/api/posts/{QID}/comments/{AID}", "board"),
    ("DELETE", f"/api/posts/{QID}/comments/{AID}", "board"),
    ("GET", "/api/questions", "qna"),
    ("POST", "/api/questions", "qna"),
    ("GET", f"/api/questions/{QID}", "qna"),
    ("PATCH", f"/api/questions/{QID}", "qna"),
    ("DELETE", f"/api/questions/{QID}", "qna"),
    ("POST", f"/api/questions/{QID}/answers", "qna"),
    ("PATCH", f"/api/questions/{QID}/answers/{AID}", "qna"),
    ("DELETE", f"/api/questions/{QID}/answers/{AID}", "qna"),
    ("POST", f"/api/questions/{QID}/answers/{AID}/accept", "saga"),
    ("GET", f"/api/questions/{QID}/comments", "qna"),
    ("POST", f"/api/questions/{QID}/comments", "qna"),
    ("PATCH", f"/api/questions/{QID}/comments/{AID}", "qna"),
    ("DELETE", f"/api/questions/{QID}/comments/{AID}", "qna"),
    ("GET", f"/api/sagas/{QID}", "saga"),
    ("PUT", "/api/admin/faults/qna/retire-author", "saga"),
]

#: Published by the services beyond the public contract (docs/CONVENTIONS.md): the target of a
#: sign-up's Location, and the list of fault flags that are on.
ADDITIVE = [
    ("GET", f"/api/members/{QID}", "member"),
    ("GET", "/api/admin/faults", "saga"),
]

#: Reads anyone may do, and the ways in; everything else needs a token at the edge.
PUBLIC = {
    ("POST", "/api/members"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/boards"),
    ("GET", "/api/boards/{board_id}/posts"),
    ("GET", "/api/posts"),
    ("GET", "/api/posts/{post_id}"),
    ("GET", "/api/posts/{post_id}/comments"),
    ("GET", "/api/questions"),
    ("GET", "/api/questions/{qid}"),
    ("GET", "/api/questions/{qid}/comments"),
}


@pytest.mark.parametrize(("method", "path", "upstream"), CONTRACT + ADDITIVE)
def test_every_contract_endpoint_reaches_its_service(method: str, path: str, upstream: str) -> None:
    match = TABLE.resolve(method, path)
    assert match.route.upstream == upstream
    assert match.route.method == method
    assert match.upstream_path == path


def test_the_table_is_exactly_the_contract() -> None:
    assert len(ROUTES) == len(CONTRACT) + len(ADDITIVE)


def test_me_is_not_taken_for_a_member_id() -> None:
    assert TABLE.resolve("GET", "/api/members/me").route.path == "/api/members/me"
    assert TABLE.resolve("DELETE", "/api/members/me").route.upstream == "saga"


def test_only_sign_up_login_and_reads_are_public() -> None:
    public = {(r.method, r.path) for r in ROUTES if r.access is not TOKEN}
    assert public == PUBLIC
    assert not any(r.access is ANONYMOUS for r in ROUTES)  # the front end's alone


#: Paths a browser asks the front end for: pages, their assets, a page with any identifier.
PAGES = [
    "/",
    "/login",
    "/boards",
    f"/boards/{QID}/posts",
    f"/questions/{QID}/answers/{AID}/accept",
    "/sagas/1/steps",
    "/static/app.css",
    "/favicon.ico",
    "/robots.txt",
    "/apis",  # only the whole first segment is reserved
    "/documents/api",
    "/my.page",
    "/a..b/...",  # dots inside a segment, or three of them, are no dot segment
]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_page_path_reaches_the_web_front_end(method: str, path: str) -> None:
    match = TABLE.resolve(method, path)
    assert match.route.upstream == "web"
    assert match.route.method == method
    assert match.upstream_path == path
    # one label per method, however many pages (bounded metric and span names)
    assert match.route.name == f"{method} /{{page...}}"
    assert match.route.path == "/{page...}"
    # a browser sends its session cookie; no bearer token is read or forwarded
    assert match.route.access is ANONYMOUS
    assert match.route.timeout is None  # WEB_TIMEOUT_SECONDS (config.upstream_timeouts)


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/",
        "/api/boards/",
        "/api/unknown",
        "/api/posts/1/2/3/4/5/6",
        "/API/boards",
        "/Api/unknown",
        "/internal/questions/1/answers/2/acceptance-check",
        "/INTERNAL/secret",
        "/.well-known/jwks.json",
        "/.WELL-KNOWN/jwks.json",
        "/docs",  # served by the gateway before the table (docs.py)
        "/docs/assets/nothing.js",
        "/openapi",
        "/openapi/web.json",
        "/healthz",
        "/healthz/detail",
        "/readyz/x",
        "/metrics/x",
    ],
)
def test_reserved_prefixes_never_reach_the_front_end(path: str) -> None:
    """Kind: an API path answered by an HTML page. Under the API's prefixes, and the gateway's own,
    an unknown path stays the gateway's problem+json 404, whatever the case of the prefix."""
    with pytest.raises(NotFound):
        TABLE.resolve("GET", path)
    assert TABLE.allowed(path) is None


@pytest.mark.parametrize(
    "path",
    [
        "//api/boards",
        "//internal/secret",
        "/../api/boards",
        "/./internal/secret",
        "/..",
        "/.",
        "/boards/",
        "/boards//posts",
        "/boards/./posts",
        "/boards/../api/boards",
        "/boards/..",
        "/api/posts/..",
        "/api/posts/.",
        "/api/posts//comments",
        "",
        "boards",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_path_with_an_empty_or_dot_segment_is_not_found(method: str, path: str) -> None:
    """Kind: a path the next hop reads differently than the edge checked it. An empty or dot
    segment is normalised, collapsed or refused by some servers and not by others: a path that
    reaches a reserved prefix only after normalisation (``/boards/../api/...``) must not pass
    as a page."""
    with pytest.raises(NotFound):
        TABLE.resolve(method, path)


def test_a_known_path_with_another_method_lists_the_allowed_ones() -> None:
    with pytest.raises(MethodNotAllowed) as refused:
        TABLE.resolve("PUT", "/api/members/me")
    assert refused.value.status == 405
    assert refused.value.headers == {"Allow": "DELETE, GET, HEAD, OPTIONS, PATCH"}


def test_an_unknown_method_is_not_allowed() -> None:
    with pytest.raises(MethodNotAllowed):
        TABLE.resolve("BREW", "/api/boards")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE"])
def test_a_page_path_with_another_method_is_405_with_allow(method: str) -> None:
    with pytest.raises(MethodNotAllowed) as refused:
        TABLE.resolve(method, "/boards")
    assert refused.value.headers == {"Allow": "GET, HEAD, OPTIONS, POST"}
    assert TABLE.allowed("/boards") == frozenset({"GET", "POST"})


def test_the_table_wins_over_the_front_end() -> None:
    assert TABLE.resolve("GET", "/api/boards").route.upstream == "board"
    with pytest.raises(MethodNotAllowed):  # not handed to the front end either
        TABLE.resolve("PUT", "/api/boards")


def test_a_table_without_a_front_end_routes_no_page() -> None:
    with pytest.raises(NotFound):
        RouteTable(ROUTES).resolve("GET", "/")
    assert RouteTable(ROUTES, FRONT_END).resolve("GET", "/").route.upstream == "web"


def test_parameters_are_re_encoded_for_the_upstream() -> None:
    # The ASGI path is percent-decoded; a parameter with '?', '#', '%' or spaces must not
    # change the meaning of the upstream URL.
    match = TABLE.resolve("GET", "/api/posts/a?b#c d%")
    assert match.upstream_path == "/api/posts/a%3Fb%23c%20d%25"
    assert TABLE.resolve("GET", "/api/posts/ü").upstream_path == "/api/posts/%C3%BC"


def test_a_page_path_is_re_encoded_for_the_front_end() -> None:
    """The same for a page: a decoded ``?``, ``#`` or ``%`` stays in the path; a decoded ``/``
    (``%2F``) is a separator from here on, the path the edge checked."""
    match = TABLE.resolve("GET", "/search/a?b#c d%")
    assert match.upstream_path == "/search/a%3Fb%23c%20d%25"
    assert TABLE.resolve("GET", "/게시판").upstream_path == "/%EA%B2%8C%EC%8B%9C%ED%8C%90"
    assert TABLE.resolve("GET", "/a:b@c;d=e,f+g!").upstream_path == "/a:b@c;d=e,f+g!"
    assert TABLE.resolve("GET", "/a\\b").upstream_path == "/a%5Cb"
    assert TABLE.resolve("GET", "/nul\x00").upstream_path == "/nul%00"


def test_static_paths_win_over_templates() -> None:
    table = RouteTable(
        [
            Route("GET", "/api/members/me", "member", TOKEN),
            Route("GET", "/api/members/{member_id}", "board", TOKEN),
        ]
    )
    assert table.resolve("GET", "/api/members/me").route.upstream == "member"
    assert table.resolve("GET", "/api/members/x").route.upstream == "board"


def test_a_duplicate_route_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        RouteTable([Route("GET", "/a/{x}", "board", TOKEN), Route("GET", "/a/{x}", "qna", TOKEN)])


def test_route_names_label_metrics() -> None:
    assert TABLE.resolve("GET", f"/api/posts/{QID}").route.name == "GET /api/posts/{post_id}"


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/", True),
        ("/boards", True),
        ("/questions/1/answers", True),
        ("/static/app.css", True),
        ("/api/boards", False),  # a table path
        ("/api/nothing", False),  # an unknown API path: the 404 problem
        ("/API/boards", False),
        ("/docs", False),
        ("/healthz", False),
        ("/.well-known/jwks.json", False),
        ("/boards/", False),  # an empty segment: no page path
        ("/a/../api", False),
    ],
)
def test_is_page_is_the_front_end_fallback_and_nothing_else(path: str, page: bool) -> None:
    """The rule that decides whether the gateway's own answer is an HTML page (``pages.py``)."""
    assert TABLE.is_page(path) is page
    assert RouteTable(ROUTES).is_page(path) is False  # no front end, no page
