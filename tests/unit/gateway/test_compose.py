"""The dashboard composition, against a hand-written fake of the upstream fetch port."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from chassis.problems import GatewayTimeout, ServiceUnavailable
from gateway.compose import compose_dashboard
from gateway.pool import UpstreamReply

ME = uuid.UUID("7f4c1f7e-52a7-4d55-9b2c-2f4d1f9b3e11")


class FakeUpstreams:
    """Answers per path; an exception instead of an answer is raised; records what was asked."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def fetch(self, upstream: str, target: str) -> UpstreamReply:
        self.asked.append((upstream, target))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        answer = self.answers[target.partition("?")[0]]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, UpstreamReply):
            return answer
        return UpstreamReply(200, [], json.dumps(answer).encode())


def healthy() -> dict[str, Any]:
    return {
        "/api/members/me": {"id": str(ME), "nickname": "kim"},
        "/api/members/me/activity": {"posts": 2, "points": 100},
        "/api/posts": {"items": [{"id": "p1"}], "total": 1, "page": 1, "size": 5},
        "/api/questions": {"items": [], "total": 0, "page": 1, "size": 5},
    }


async def test_all_parts_are_fetched_in_parallel_and_composed() -> None:
    upstreams = FakeUpstreams(healthy())
    dashboard = await compose_dashboard(upstreams.fetch, ME)
    assert dashboard.model_dump() == {
        "member": {"id": str(ME), "nickname": "kim"},
        "activity": {"posts": 2, "points": 100},
        "recent_posts": [{"id": "p1"}],
        "recent_questions": [],
        "degraded": [],
    }
    assert upstreams.max_in_flight == 4
    assert sorted(upstreams.asked) == [
        ("board", f"/api/posts?author_id={ME}&size=5"),
        ("member", "/api/members/me"),
        ("member", "/api/members/me/activity"),
        ("qna", f"/api/questions?author_id={ME}&size=5"),
    ]


async def test_failed_parts_are_null_and_named() -> None:
    answers = healthy()
    answers["/api/members/me/activity"] = GatewayTimeout("member did not answer within 1 s")
    answers["/api/questions"] = ServiceUnavailable("qna is unavailable (circuit open)")
    dashboard = await compose_dashboard(FakeUpstreams(answers).fetch, ME)
    assert dashboard.member == {"id": str(ME), "nickname": "kim"}
    assert dashboard.activity is None
    assert dashboard.recent_posts == [{"id": "p1"}]
    assert dashboard.recent_questions is None
    assert dashboard.degraded == ["activity", "recent_questions"]


async def test_error_answers_and_nonsense_degrade_their_part() -> None:
    answers = healthy()
    answers["/api/members/me"] = UpstreamReply(500, [], b'{"title": "boom"}')
    answers["/api/members/me/activity"] = UpstreamReply(200, [], b"not json")
    answers["/api/posts"] = {"no": "items"}
    answers["/api/questions"] = UpstreamReply(200, [], b"[1, 2]")
    dashboard = await compose_dashboard(FakeUpstreams(answers).fetch, ME)
    assert dashboard.degraded == ["member", "activity", "recent_posts", "recent_questions"]
    assert dashboard.member is None
    assert dashboard.recent_posts is None


async def test_an_unexpected_error_in_one_part_does_not_fail_the_dashboard() -> None:
    answers = healthy()
    answers["/api/posts"] = RuntimeError("a bug in one part")
    dashboard = await compose_dashboard(FakeUpstreams(answers).fetch, ME)
    assert dashboard.degraded == ["recent_posts"]
