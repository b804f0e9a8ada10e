"""A test client for the saga stack: members, posts, questions and sagas through each service's API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.infra import wait_for

TERMINAL = ("COMPLETED", "COMPENSATED", "FAILED")


@dataclass(frozen=True)
class Member:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class SagaStackClient:
    """Talks to member, board, qna and saga directly (the gateway is not part of these tests)."""

    def __init__(self, http: httpx.AsyncClient, urls: dict[str, str], admin: Member) -> None:
        self.http = http
        self.urls = urls
        self.admin = admin

    @staticmethod
    async def log_in(http: httpx.AsyncClient, member_url: str, email: str, password: str) -> str:
        response = await http.post(
            f"{member_url}/api/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def _ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, f"{response.request.url}: {response.text}"
        return response.json() if response.content else None

    # --- member ---------------------------------------------------------------------------

    async def sign_up(self) -> Member:
        suffix = uuid.uuid4().hex[:10]
        email, password = f"m{suffix}@example.com", "password-123"
        created = await self._ok(
            await self.http.post(
                f"{self.urls['member']}/api/members",
                json={"email": email, "password": password, "nickname": f"n{suffix}"},
            ),
            201,
        )
        token = await self.log_in(self.http, self.urls["member"], email, password)
        return Member(created["id"], email, token)

    async def member(self, member_id: str) -> dict[str, Any]:
        """A member as an admin sees it (status, points)."""
        body: dict[str, Any] = await self._ok(
            await self.http.get(
                f"{self.urls['member']}/api/members/{member_id}", headers=self.admin.headers
            )
        )
        return body

    async def can_log_in(self, email: str) -> bool:
        response = await self.http.post(
            f"{self.urls['member']}/api/auth/login",
            json={"email": email, "password": "password-123"},
        )
        return response.status_code == 200

    # --- board ----------------------------------------------------------------------------

    async def write_post(self, author: Member) -> str:
        boards = await self._ok(await self.http.get(f"{self.urls['board']}/api/boards"))
        free = next(b for b in boards if b["slug"] == "free")
        post = await self._ok(
            await self.http.post(
                f"{self.urls['board']}/api/boards/{free['id']}/posts",
                json={"title": "a post", "content": "some content"},
                headers=author.headers,
            ),
            201,
        )
        post_id: str = post["id"]
        await self._ok(
            await self.http.post(
                f"{self.urls['board']}/api/posts/{post_id}/comments",
                json={"content": "a comment"},
                headers=author.headers,
            ),
            201,
        )
        return post_id

    async def post(self, post_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._ok(
            await self.http.get(f"{self.urls['board']}/api/posts/{post_id}")
        )
        return body

    # --- qna ------------------------------------------------------------------------------

    async def ask(self, asker: Member, bounty: int) -> str:
        question = await self._ok(
            await self.http.post(
                f"{self.urls['qna']}/api/questions",
                json={"title": "a question", "content": "why?", "bounty": bounty},
                headers=asker.headers,
            ),
            201,
        )
        question_id: str = question["id"]
        return question_id

    async def answer(self, answerer: Member, question_id: str) -> str:
        answer = await self._ok(
            await self.http.post(
                f"{self.urls['qna']}/api/questions/{question_id}/answers",
                json={"content": "because"},
                headers=answerer.headers,
            ),
            201,
        )
        answer_id: str = answer["id"]
        return answer_id

    async def question(self, question_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._ok(
            await self.http.get(f"{self.urls['qna']}/api/questions/{question_id}")
        )
        return body

    # --- saga -----------------------------------------------------------------------------

    async def accept(self, asker: Member, question_id: str, answer_id: str) -> str:
        started = await self._ok(
            await self.http.post(
                f"{self.urls['saga']}/api/questions/{question_id}/answers/{answer_id}/accept",
                headers=asker.headers,
            ),
            202,
        )
        saga_id: str = started["saga_id"]
        return saga_id

    async def withdraw(self, member: Member) -> str:
        started = await self._ok(
            await self.http.delete(f"{self.urls['saga']}/api/members/me", headers=member.headers),
            202,
        )
        saga_id: str = started["saga_id"]
        return saga_id

    async def saga(self, saga_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._ok(
            await self.http.get(
                f"{self.urls['saga']}/api/sagas/{saga_id}", headers=self.admin.headers
            )
        )
        return body

    async def wait_saga(self, saga_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the saga ends; fail at once if it ends in another state."""

        async def ended() -> dict[str, Any] | None:
            saga = await self.saga(saga_id)
            if saga["status"] in TERMINAL:
                assert saga["status"] == status, saga
                return saga
            return None

        result: dict[str, Any] = await wait_for(  # type: ignore[assignment]
            ended, timeout=timeout, interval=0.1, message=f"saga {saga_id} {status}"
        )
        return result

    async def wait_step(self, saga_id: str, step: str, status: str, timeout: float = 30.0) -> None:
        async def reached() -> bool:
            steps = {s["name"]: s["status"] for s in (await self.saga(saga_id))["steps"]}
            return bool(steps[step] == status)

        await wait_for(reached, timeout=timeout, interval=0.05, message=f"{step} {status}")

    async def set_fault(self, service: str, command: str, mode: str, delay_ms: int = 0) -> None:
        await self._ok(
            await self.http.put(
                f"{self.urls['saga']}/api/admin/faults/{service}/{command}",
                json={"mode": mode, "delay_ms": delay_ms},
                headers=self.admin.headers,
            )
        )

    async def metric(self, url: str, name: str, **labels: str) -> float:
        """One sample of a process's /metrics (0 when absent)."""
        text = (await self.http.get(f"{url}/metrics")).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(f"{name}{{") or line.startswith(f"{name} "):
                metric_name, _, value = line.rpartition(" ")
                found = metric_name[len(name) :].strip("{}")
                if ",".join(sorted(found.split(","))) == wanted:
                    return float(value)
        return 0.0


async def eventually(check: Any, timeout: float = 20.0, message: str = "condition") -> Any:
    """Poll an async predicate until it holds (read models are eventually consistent)."""
    return await wait_for(check, timeout=timeout, interval=0.1, message=message)
