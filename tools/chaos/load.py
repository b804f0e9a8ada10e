"""Load generator for the fault suite and the walkthroughs: a bounded, concurrent mix of writes through the gateway.

Every request is recorded with when it started and ended and its outcome, so that each
failure can be placed against the fault windows. The mix: sign-ups and log-ins, posts,
many comments on a few hot posts (to stress the comment counts), deletes of comments,
posts, questions and answers (the tombstone paths of the read models), questions with
bounties, answers, acceptances and withdrawals (the two sagas). The admin's calls (step
faults through ``PUT /api/admin/faults/{service}/{command}``, ``GET /api/sagas/{id}``) go the
same way and are recorded too.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

#: The password of every member the load signs up (throwaway accounts of a local stack).
PASSWORD = "chaos-password-1"  # noqa: S105 - not a secret
#: Per request: long enough for a write that waits on a restarting database.
REQUEST_TIMEOUT = 15.0


@dataclass(frozen=True)
class Request:
    """One request: its operation, start and end (monotonic seconds), status and outcome."""

    op: str
    started: float
    ended: float
    status: int | None  # None: no answer (connection error, timeout)
    ok: bool
    detail: str = ""


@dataclass
class Member:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Question:
    id: str
    asker: Member
    answers: list[tuple[str, Member]] = field(default_factory=list)


@dataclass
class World:
    """What the load has created and may still use; a member or question leaves the pools
    before a saga that would make further writes on it invalid is started."""

    members: list[Member] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)
    #: Posts that may be deleted (not the hot ones, which take the comments), with their author.
    own_posts: list[tuple[str, Member]] = field(default_factory=list)
    hot_posts: list[str] = field(default_factory=list)
    comments: list[tuple[str, str, Member]] = field(default_factory=list)  # post, comment, author
    questions: list[Question] = field(default_factory=list)
    sagas: list[str] = field(default_factory=list)
    free_board: str = ""
    #: Ids the load deleted (answered 204), for the invariants: each must be gone from its list.
    deleted_posts: set[str] = field(default_factory=set)
    deleted_questions: set[str] = field(default_factory=set)
    deleted_answers: set[str] = field(default_factory=set)


class Load:
    """Writes through the gateway at ``gateway_url`` with bounded concurrency, recording
    every request; the admin (``admin_email``, ``admin_password``) sets faults, reads sagas."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        rng: random.Random,
        gateway_url: str,
        admin_email: str,
        admin_password: str,
    ) -> None:
        self.http = http
        self.rng = rng
        self.gateway_url = gateway_url
        self.admin_email = admin_email
        self.admin_password = admin_password
        self.world = World()
        self.requests: list[Request] = []
        self.admin: Member | None = None
        #: Members whose withdrawal has started: a write of theirs still in flight may be refused
        #: (403, or 401 once the withdrawal completed).
        self.withdrawing: set[str] = set()
        #: The next operation of the client that goes through the mix in turn.
        self._turn = 0

    # ------------------------------------------------------------------ one request

    async def call(
        self,
        op: str,
        method: str,
        path: str,
        expect: int,
        member: Member | None = None,
        excused: Callable[[int], bool] | None = None,
        **kw: Any,
    ) -> Any:
        """Send one request; return its JSON body when the status is ``expect``, else None.

        ``excused(status)`` says whether another answer is a correct refusal (a race the load
        itself created, such as an answer sent just as its question began an acceptance).
        """
        started = time.monotonic()
        headers = dict(member.headers) if member else {}
        if method == "POST":
            # A client that retries a write sends the same key; here each write is sent once.
            headers["Idempotency-Key"] = uuid.uuid4().hex
        status: int | None = None
        detail = ""
        body: Any = None
        try:
            response = await self.http.request(
                method, f"{self.gateway_url}{path}", headers=headers, timeout=REQUEST_TIMEOUT, **kw
            )
            status = response.status_code
            if status == expect:
                body = response.json() if response.content else {}
            else:
                detail = response.text[:200]
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
        ok = status == expect
        if not ok and status is not None:
            # 403 from board or qna from step 1 on; 401 at the gateway once the withdrawal
            # completed (the token deny-list)
            refused_withdrawing = (
                status in (401, 403) and member is not None and member.id in self.withdrawing
            )
            if refused_withdrawing or (excused is not None and excused(status)):
                self.requests.append(Request(op, started, time.monotonic(), status, True, detail))
                return None
        self.requests.append(Request(op, started, time.monotonic(), status, ok, detail))
        return body if ok else None

    # ------------------------------------------------------------------ operations

    async def sign_up(self) -> Member | None:
        suffix = uuid.uuid4().hex[:12]
        email = f"c{suffix}@chaos.example"
        created = await self.call(
            "sign-up",
            "POST",
            "/api/members",
            201,
            json={"email": email, "password": PASSWORD, "nickname": f"c{suffix}"},
        )
        if created is None:
            return None
        return await self.log_in(email, PASSWORD, created["id"])

    async def log_in(self, email: str, password: str, member_id: str = "") -> Member | None:
        tokens = await self.call(
            "log-in", "POST", "/api/auth/login", 200, json={"email": email, "password": password}
        )
        if tokens is None:
            return None
        return Member(member_id, email, tokens["access_token"])

    async def log_in_admin(self) -> Member:
        admin = await self.log_in(self.admin_email, self.admin_password)
        assert admin is not None, "the admin cannot log in"
        self.admin = admin
        return admin

    async def write_post(self, author: Member) -> str | None:
        post = await self.call(
            "post",
            "POST",
            f"/api/boards/{self.world.free_board}/posts",
            201,
            author,
            json={"title": f"post {uuid.uuid4().hex[:6]}", "content": "chaos"},
        )
        if post is None:
            return None
        self.world.posts.append(post["id"])
        self.world.own_posts.append((str(post["id"]), author))
        return str(post["id"])

    async def delete_post(self) -> None:
        """Delete a post (not a hot one) as its author: a tombstone in the post list."""
        if not self.world.own_posts:
            return
        post_id, author = self.world.own_posts.pop(self.rng.randrange(len(self.world.own_posts)))
        if author not in self.world.members or post_id in self.world.hot_posts:
            return
        done = await self.call("delete-post", "DELETE", f"/api/posts/{post_id}", 204, author)
        if done is not None:
            self.world.deleted_posts.add(post_id)

    async def comment(self, author: Member) -> None:
        post_id = self.rng.choice(self.world.hot_posts)
        comment = await self.call(
            "comment",
            "POST",
            f"/api/posts/{post_id}/comments",
            201,
            author,
            json={"content": "a comment"},
        )
        if comment is not None:
            self.world.comments.append((post_id, comment["id"], author))

    async def delete_comment(self) -> None:
        if not self.world.comments:
            return
        post_id, comment_id, author = self.world.comments.pop(
            self.rng.randrange(len(self.world.comments))
        )
        if author not in self.world.members:  # withdrawing: its writes are refused
            return
        await self.call(
            "delete-comment", "DELETE", f"/api/posts/{post_id}/comments/{comment_id}", 204, author
        )

    async def ask(self, asker: Member) -> None:
        question = await self.call(
            "question",
            "POST",
            "/api/questions",
            201,
            asker,
            json={"title": "why?", "content": "chaos", "bounty": self.rng.randint(0, 60)},
        )
        # The asker's withdrawal may have begun while this was in flight: it closes the question.
        if question is not None and asker.id not in self.withdrawing:
            self.world.questions.append(Question(question["id"], asker))

    async def answer(self, answerer: Member, question: Question | None = None) -> None:
        """Answer ``question``, or a random open question of somebody else."""
        if question is None:
            candidates = [q for q in self.world.questions if q.asker is not answerer]
            if not candidates:
                return
            question = self.rng.choice(candidates)
        answer = await self.call(
            "answer",
            "POST",
            f"/api/questions/{question.id}/answers",
            201,
            answerer,
            # 409: it began an acceptance or its asker a withdrawal; 404: it was deleted.
            excused=lambda status: (
                status in (404, 409)
                and (question not in self.world.questions or question.asker.id in self.withdrawing)
            ),
            json={"content": "because"},
        )
        if answer is not None:
            question.answers.append((answer["id"], answerer))

    async def delete_question(self) -> None:
        """Delete an OPEN question of the pool as its asker, with its answers."""
        if not self.world.questions:
            return
        question = self.rng.choice(self.world.questions)
        self.world.questions.remove(question)  # no more answers, no acceptance
        done = await self.call(
            "delete-question",
            "DELETE",
            f"/api/questions/{question.id}",
            204,
            question.asker,
            # Its asker's withdrawal began meanwhile and closed it.
            excused=lambda status: status == 409 and question.asker.id in self.withdrawing,
        )
        if done is not None:
            self.world.deleted_questions.add(question.id)
            self.world.deleted_answers.update(a for a, _ in question.answers)

    async def delete_answer(self) -> None:
        """Delete an answer of an OPEN question of the pool as its author (allowed only while
        the question is OPEN and the answer not accepted)."""
        candidates = [q for q in self.world.questions if q.answers]
        if not candidates:
            return
        question = self.rng.choice(candidates)
        answer_id, author = question.answers.pop(self.rng.randrange(len(question.answers)))
        done = await self.call(
            "delete-answer",
            "DELETE",
            f"/api/questions/{question.id}/answers/{answer_id}",
            204,
            author,
            # An acceptance of its question (409), or its deletion (404), began meanwhile.
            excused=lambda status: status in (404, 409) and question not in self.world.questions,
        )
        if done is not None:
            self.world.deleted_answers.add(answer_id)

    async def accept(self) -> str | None:
        """Start an answer-acceptance saga on a question with an answer (once per question)."""
        candidates = [q for q in self.world.questions if q.answers]
        if not candidates:
            return None
        question = self.rng.choice(candidates)
        self.world.questions.remove(question)  # no more answers, no second accept
        answer_id, answerer = self.rng.choice(question.answers)
        started = await self.call(
            "accept",
            "POST",
            f"/api/questions/{question.id}/answers/{answer_id}/accept",
            202,
            question.asker,
            # 409: the answerer's withdrawal began meanwhile (a withdrawn author cannot be paid).
            excused=lambda status: status == 409 and answerer.id in self.withdrawing,
        )
        if started is None:
            return None
        self.world.sagas.append(started["saga_id"])
        return str(started["saga_id"])

    async def withdraw(self) -> str | None:
        """Start a member-withdrawal saga for a member who has written something."""
        if len(self.world.members) <= 4:
            return None
        member = self.world.members.pop(self.rng.randrange(len(self.world.members)))
        self.withdrawing.add(member.id)
        # Nothing of theirs is written to after this point (their writes are refused).
        self.world.questions = [q for q in self.world.questions if q.asker is not member]
        for question in self.world.questions:
            question.answers = [a for a in question.answers if a[1] is not member]
        started = await self.call("withdraw", "DELETE", "/api/members/me", 202, member)
        if started is None:
            return None
        self.world.sagas.append(started["saga_id"])
        return str(started["saga_id"])

    # ------------------------------------------------------------------ the mix

    async def prepare(self, members: int, hot_posts: int) -> None:
        """Members, a few hot posts and a question or two per member, before any fault."""
        boards = await self.call("boards", "GET", "/api/boards", 200)
        assert boards is not None, "GET /api/boards failed"
        self.world.free_board = next(b["id"] for b in boards if b["slug"] == "free")
        signed_up = await asyncio.gather(*(self.sign_up() for _ in range(members)))
        self.world.members = [m for m in signed_up if m is not None]
        assert len(self.world.members) >= 5, "sign-ups failed before any fault"
        for member in self.world.members[:hot_posts]:
            post_id = await self.write_post(member)
            if post_id is not None:
                self.world.hot_posts.append(post_id)
        await asyncio.gather(*(self.ask(m) for m in self.world.members))

    def mix(self, sagas: float) -> list[tuple[float, Callable[[], Awaitable[Any]]]]:
        """Weighted operations; ``sagas`` scales the weight of acceptances and withdrawals."""

        def member() -> Member:
            return self.rng.choice(self.world.members)

        async def new_member() -> None:
            created = await self.sign_up()
            if created is not None:
                self.world.members.append(created)

        return [
            (3, new_member),
            (6, lambda: self.write_post(member())),
            (40, lambda: self.comment(member())),
            (8, self.delete_comment),
            (2, self.delete_post),
            (8, lambda: self.ask(member())),
            (14, lambda: self.answer(member())),
            (2, self.delete_answer),
            (1, self.delete_question),
            (6 * sagas, self.accept),
            (1 * sagas, self.withdraw),
        ]

    async def run(self, seconds: float, concurrency: int, *, sagas: float = 1.0) -> None:
        """Send the mix for ``seconds`` from ``concurrency`` tasks (each pausing briefly): one
        goes through every operation in turn, so that each kind of write is sent all along
        (also while a fault lasts), the others pick by weight."""
        operations = self.mix(sagas)
        weights = [w for w, _ in operations]
        deadline = time.monotonic() + seconds

        async def client(in_turn: bool) -> None:
            while time.monotonic() < deadline:
                if in_turn:
                    _, operation = operations[self._turn % len(operations)]
                    self._turn += 1
                else:
                    _, operation = self.rng.choices(operations, weights)[0]
                await operation()
                await asyncio.sleep(self.rng.uniform(0.02, 0.1))

        await asyncio.gather(*(client(i == 0) for i in range(concurrency)))

    async def set_fault(self, service: str, command: str, mode: str, delay_ms: int = 0) -> None:
        """Set the step fault ``faults:{service}:{command}`` (``mode`` ``fail``, ``delay`` by
        ``delay_ms`` or ``off``) through the admin API; ``AssertionError`` when refused."""
        assert self.admin is not None
        done = await self.call(
            "fault",
            "PUT",
            f"/api/admin/faults/{service}/{command}",
            200,
            self.admin,
            json={"mode": mode, "delay_ms": delay_ms},
        )
        assert done is not None, f"could not set the fault {service}/{command} {mode}"

    async def saga(self, saga_id: str) -> dict[str, Any] | None:
        """``GET /api/sagas/{saga_id}`` as the admin: status, steps, failure reason (None
        when it cannot be read)."""
        assert self.admin is not None
        body: dict[str, Any] | None = await self.call(
            "saga", "GET", f"/api/sagas/{saga_id}", 200, self.admin
        )
        return body
