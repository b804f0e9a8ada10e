"""The route table: every public endpoint is routed to its service, nothing else is."""

from __future__ import annotations

import pytest

from chassis.problems import NotFound
from gateway.routes import ROUTES, TABLE, TOKEN, MethodNotAllowed, Route, RouteTable

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


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api",
        "/api/",
        "/api/boards/",
        "/api/unknown",
        "/internal/questions/1/answers/2/acceptance-check",
        "/api/posts/1/2/3/4/5/6",
        "//api/boards",
        "/.well-known/jwks.json",
        "/api/posts/..",
        "/api/posts/.",
        "/api/posts//comments",
    ],
)
def test_anything_else_is_not_found(path: str) -> None:
    with pytest.raises(NotFound):
        TABLE.resolve("GET", path)


def test_a_known_path_with_another_method_lists_the_allowed_ones() -> None:
    with pytest.raises(MethodNotAllowed) as refused:
        TABLE.resolve("PUT", "/api/members/me")
    assert refused.value.status == 405
    assert refused.value.headers == {"Allow": "DELETE, GET, HEAD, OPTIONS, PATCH"}


def test_an_unknown_method_is_not_allowed() -> None:
    with pytest.raises(MethodNotAllowed):
        TABLE.resolve("BREW", "/api/boards")


def test_parameters_are_re_encoded_for_the_upstream() -> None:
    # The ASGI path is percent-decoded; a parameter with '?', '#', '%' or spaces must not
    # change the meaning of the upstream URL.
    match = TABLE.resolve("GET", "/api/posts/a?b#c d%")
    assert match.upstream_path == "/api/posts/a%3Fb%23c%20d%25"
    assert TABLE.resolve("GET", "/api/posts/ü").upstream_path == "/api/posts/%C3%BC"


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
