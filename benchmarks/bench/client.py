"""HTTP set-up shared by the harness and benchmarks/saga_latency.py: members, questions, answers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

#: The password of the throwaway members the benchmarks sign up.
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway test account


class UnexpectedStatus(RuntimeError):
    """A set-up or measured request got another status than the one it needs."""


@dataclass
class Member:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON body of ``response``; ``UnexpectedStatus`` unless its status is ``status``."""
    if response.status_code != status:
        raise UnexpectedStatus(
            f"{response.request.method} {response.request.url}: {response.status_code} "
            f"{response.text[:500]}"
        )
    return response.json()


async def sign_up(http: httpx.AsyncClient, member_url: str) -> Member:
    """A new member (``member_url`` is member's api or the gateway) and its access token."""
    suffix = uuid.uuid4().hex[:10]
    email = f"bench-{suffix}@example.com"
    created = ok(
        await http.post(
            f"{member_url}/api/members",
            json={"email": email, "password": PASSWORD, "nickname": f"b{suffix}"},
        ),
        201,
    )
    tokens = ok(
        await http.post(f"{member_url}/api/auth/login", json={"email": email, "password": PASSWORD})
    )
    return Member(created["id"], tokens["access_token"])


async def prepare_acceptance(
    http: httpx.AsyncClient, qna_url: str, asker: Member, answerer: Member
) -> tuple[str, str]:
    """A question of ``asker`` (bounty 1) with an answer of ``answerer``: (question id, answer id)."""
    question = ok(
        await http.post(
            f"{qna_url}/api/questions",
            json={"title": "benchmark question", "content": "how fast?", "bounty": 1},
            headers=asker.headers,
        ),
        201,
    )
    answer = ok(
        await http.post(
            f"{qna_url}/api/questions/{question['id']}/answers",
            json={"content": "fast"},
            headers=answerer.headers,
        ),
        201,
    )
    return question["id"], answer["id"]
